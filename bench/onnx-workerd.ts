// Drives the ONNX engine in workerd for bench/onnx-bench.ts: `wrangler dev` on the test/workerd harness Worker with
// a given export as its MODEL assets, timed from outside (client round trip) and inside (the harness's serverMs: a
// timer turn on each side of the engine call, so workerd's clock has moved even where it only moves on I/O), plus the
// workerd process's resident memory and the Worker bundle size from `wrangler deploy --dry-run`.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { gzipSync } from 'node:zlib';

const ROOT = resolve(import.meta.dirname, '..');
const HARNESS = join(ROOT, 'test', 'workerd');
const WRANGLER = join(ROOT, 'node_modules', '.bin', 'wrangler');

export interface WorkerdTimings {
  coldStartMs: number;
  warmHealthMs: number;
  prefill: {
    length: number;
    ms: number;
    tokensPerSecond: number;
    cpuMs: number;
    cpuTokensPerSecond: number;
    /** Median time inside the Worker (engine.prefill between two timer turns), no HTTP round trip. */
    serverMs: number;
    serverTokensPerSecond: number;
  }[];
  decodeTokensPerSecond: number;
  /** 64 / the 64 decode steps of generate(65) as the Worker timed them (generate().timings.decodeMs), median of 5. */
  serverDecodeTokensPerSecond: number;
  cpuDecodeTokensPerSecond: number;
  latency512plus32Ms: number;
  wasmMemoryMiB: number;
  workerdRssMiB: number;
  workerdPeakRssMiB: number;
}

/**
 * A wrangler config that serves the already built bundle (from workerBundleSize) without bundling, so `wrangler dev`
 * does not watch the sources: other sessions edit them while the benchmark runs, and each edit restarted the Worker.
 */
function harnessConfig(bundleDir: string, modelDir: string, out: string, engine?: string): string {
  const text = (
    readFileSync(join(HARNESS, 'wrangler.toml'), 'utf8') + (engine ? `\n[vars]\nENGINE = "${engine}"\n` : '')
  )
    .replace(
      /^main = .*$/m,
      `main = "${join(bundleDir, 'worker.js')}"\nno_bundle = true\nrules = [{ type = "CompiledWasm", globs = ["**/*.wasm"] }]`,
    )
    .replace(/^directory = .*$/m, `directory = "${modelDir}"`);
  writeFileSync(out, text);
  return out;
}

function descendants(pid: number): number[] {
  const children = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter(Boolean)
    .map(Number);
  return children.flatMap((c) => [c, ...descendants(c)]);
}

/**
 * The workerd process that runs the Worker. wrangler dev starts two: a proxy listening on the dev port, and the
 * one running user code (its own port, with the inspector enabled).
 */
function workerdPid(root: number): number | null {
  for (const pid of descendants(root)) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes('workerd') && cmdline.includes('--inspector-addr')) return pid;
    } catch {
      // process went away
    }
  }
  return null;
}

/** CPU time (ms) the process has used: utime + stime from /proc/<pid>/stat, in 10 ms clock ticks. */
function processCpuMs(pid: number | null): number {
  if (pid === null) return NaN;
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** RSS and peak RSS (MiB) of the workerd process running the Worker. */
function workerdMemory(root: number): { rss: number; peak: number } {
  const pid = workerdPid(root);
  if (pid === null) return { rss: NaN, peak: NaN };
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

async function waitReady(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited: ${log().slice(-2000)}`);
    if (/Ready on/.test(log())) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`wrangler dev not ready on port ${port}: ${log().slice(-2000)}`);
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A port nobody listens on right now (other sessions run servers on this machine too). */
function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => ok(port));
    });
  });
}

/** A running `wrangler dev` on the harness: JSON calls, and the workerd process running the Worker. */
export interface WorkerdHarness {
  get(path: string): Promise<Record<string, number>>;
  post(path: string, body: unknown): Promise<Record<string, unknown>>;
  /** CPU ms of the Worker's workerd process (see processCpuMs). */
  cpuMs(): number;
  memory(): { rss: number; peak: number };
}

/** Starts the harness Worker on `modelDir` (ENGINE = `engine` when set), runs `use`, and stops it. */
export async function withWorkerd<T>(
  bundleDir: string,
  modelDir: string,
  tmp: string,
  /** The harness's ENGINE var: 'wasm-fp32' | 'wasm-int8' (mamba/wasm's engine; modelDir needs model.safetensors). */
  engine: string | undefined,
  use: (h: WorkerdHarness) => Promise<T>,
): Promise<T> {
  mkdirSync(tmp, { recursive: true });
  const port = await freePort();
  const config = harnessConfig(bundleDir, modelDir, join(tmp, `wrangler-${port}.toml`), engine);
  let output = '';
  const child = spawn(
    WRANGLER,
    ['dev', '--config', config, '--port', String(port), '--ip', '127.0.0.1', '--log-level', 'info'],
    {
      cwd: ROOT,
      env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  try {
    await waitReady(port, child, () => output);
    const base = `http://127.0.0.1:${port}`;
    return await use({
      get: async (path) => (await fetch(base + path)).json() as Promise<Record<string, number>>,
      post: async (path, body) => {
        const res = await fetch(base + path, { method: 'POST', body: JSON.stringify(body) });
        const data = (await res.json()) as Record<string, unknown>;
        if (res.status !== 200) throw new Error(`${path}: ${JSON.stringify(data)}`);
        return data;
      },
      cpuMs: () => processCpuMs(workerdPid(child.pid!)),
      memory: () => workerdMemory(child.pid!),
    });
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    for (const pid of descendants(child.pid!)) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
  }
}

export async function benchWorkerd(
  bundleDir: string,
  modelDir: string,
  tmp: string,
  ids: (n: number) => number[],
  engine?: string,
): Promise<WorkerdTimings> {
  return withWorkerd(bundleDir, modelDir, tmp, engine, async ({ get, post, cpuMs, memory }) => {
    const cpuTimed = async (fn: () => Promise<Record<string, unknown>>) => {
      const c0 = cpuMs();
      const { ms, value } = await timed(fn);
      return { ms, cpu: cpuMs() - c0, server: Number(value.serverMs), decode: Number(value.decodeMs ?? Number.NaN) };
    };
    const cold = await timed(() => get('/health'));
    const warm = await timed(() => get('/health'));
    // Warm-up: V8 tiers hot wasm functions up from its baseline compiler in the background.
    for (let i = 0; i < 4; i++) await post('/prefill', { ids: ids(512) });
    const prefill: WorkerdTimings['prefill'] = [];
    for (const length of [128, 512, 2048]) {
      const input = ids(length);
      await post('/prefill', { ids: input });
      const runs: { ms: number; cpu: number; server: number }[] = [];
      for (let i = 0; i < (length > 1000 ? 3 : 5); i++)
        runs.push(await cpuTimed(() => post('/prefill', { ids: input })));
      const ms = median(runs.map((r) => r.ms));
      const cpuMs = Math.min(...runs.map((r) => r.cpu));
      const serverMs = median(runs.map((r) => r.server));
      prefill.push({
        serverMs,
        serverTokensPerSecond: (length / serverMs) * 1000,
        length,
        ms,
        tokensPerSecond: (length / ms) * 1000,
        cpuMs,
        cpuTokensPerSecond: (length / cpuMs) * 1000,
      });
    }
    const prompt = ids(512);
    const one: { ms: number; cpu: number; server: number; decode: number }[] = [];
    const many: { ms: number; cpu: number; server: number; decode: number }[] = [];
    for (let i = 0; i < 5; i++) {
      one.push(await cpuTimed(() => post('/generate', { ids: prompt, maxTokens: 1 })));
      many.push(await cpuTimed(() => post('/generate', { ids: prompt, maxTokens: 65 })));
    }
    const latency: number[] = [];
    for (let i = 0; i < 3; i++) latency.push((await timed(() => post('/generate', { ids: prompt, maxTokens: 32 }))).ms);
    const health = await get('/health');
    const mem = memory();
    return {
      coldStartMs: cold.ms,
      warmHealthMs: warm.ms,
      prefill,
      decodeTokensPerSecond: 64 / ((median(many.map((r) => r.ms)) - median(one.map((r) => r.ms))) / 1000),
      // the 64 steps as the Worker timed them: the difference of two whole-request medians (each mostly a 512-token
      // prefill) moved this figure by 20-40% between runs for the fast int8 engine
      serverDecodeTokensPerSecond: 64 / (median(many.map((r) => r.decode)) / 1000),
      cpuDecodeTokensPerSecond:
        64 / ((Math.min(...many.map((r) => r.cpu)) - Math.min(...one.map((r) => r.cpu))) / 1000),
      latency512plus32Ms: median(latency),
      wasmMemoryMiB: health.wasmMemoryBytes! / 2 ** 20,
      workerdRssMiB: mem.rss,
      workerdPeakRssMiB: mem.peak,
    };
  });
}

export interface BundleSize {
  files: { name: string; bytes: number; gzipBytes: number }[];
  totalBytes: number;
  totalGzipBytes: number;
  command: string;
}

/** `wrangler deploy --dry-run --outdir` on the harness: what would be uploaded as the script (assets excluded). */
export function workerBundleSize(outdir: string): BundleSize {
  const args = ['deploy', '--dry-run', '--outdir', outdir, '--config', join(HARNESS, 'wrangler.toml')];
  const r = spawnSync(WRANGLER, args, {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1' },
  });
  if (r.status !== 0) throw new Error(`wrangler deploy --dry-run failed: ${r.stderr.slice(-2000)}`);
  const files = readdirSync(outdir)
    .filter((name) => statSync(join(outdir, name)).isFile() && !name.endsWith('.map'))
    .map((name) => {
      const bytes = readFileSync(join(outdir, name));
      return { name, bytes: bytes.byteLength, gzipBytes: gzipSync(bytes).byteLength };
    });
  return {
    files,
    totalBytes: files.reduce((a, f) => a + f.bytes, 0),
    totalGzipBytes: files.reduce((a, f) => a + f.gzipBytes, 0),
    command: `npx wrangler ${args.join(' ').replaceAll(ROOT + '/', '')}`,
  };
}
