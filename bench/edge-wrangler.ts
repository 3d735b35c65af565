// The edge under `wrangler dev` for the edge benchmark (bench/edge-bench.ts): the Worker bundled once, then served
// without bundling, so source edits during a run cannot restart it mid-request; stopped as a process group.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../test/runner/harness.ts';
import { REPO } from '../worker/model/build.ts';

/**
 * The Worker bundled once (`wrangler deploy --dry-run --outdir`), served by `wrangler dev` without bundling: source
 * edits by anyone during the run then cannot restart the Worker mid-request (wrangler dev watches its sources).
 */
function bundledConfig(): string {
  const dir = mkdtempSync(join(tmpdir(), 'edge-bench-'));
  const bundle = join(dir, 'bundle');
  const built = spawnSync(join(REPO, 'node_modules/.bin/wrangler'), ['deploy', '--dry-run', '--outdir', bundle], {
    cwd: REPO,
    encoding: 'utf8',
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
  });
  if (built.status !== 0) throw new Error(`wrangler deploy --dry-run failed: ${built.stderr.slice(-2000)}`);
  const toml = readFileSync(join(REPO, 'wrangler.toml'), 'utf8')
    .replace(
      /^main = .*$/m,
      `main = "${join(bundle, 'index.js')}"\nno_bundle = true\nrules = [{ type = "CompiledWasm", globs = ["**/*.wasm"] }]`,
    )
    .replace(/^directory = .*$/m, `directory = "${join(REPO, 'dist/edge-model')}"`);
  const config = join(dir, 'wrangler.toml');
  writeFileSync(config, toml);
  return config;
}

export function startWrangler(port: number, vars: Record<string, string>): Promise<ChildProcess> {
  const args = [
    'dev',
    '--config',
    bundledConfig(),
    '--port',
    String(port),
    '--ip',
    '127.0.0.1',
    ...Object.entries(vars).flatMap(([k, v]) => ['--var', `${k}:${v}`]),
  ];
  const child = spawn(join(REPO, 'node_modules/.bin/wrangler'), args, {
    cwd: REPO,
    detached: true,
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  const keep = (d: Buffer) => {
    log += d;
    if (process.env.EDGE_BENCH_VERBOSE) process.stderr.write(`[wrangler] ${d}`);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return waitFor(
    'wrangler dev',
    async () =>
      child.exitCode === null &&
      (await fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.ok,
        () => false,
      )),
    180_000,
  )
    .then(() => child)
    .catch((err: Error) => {
      throw new Error(`${err.message}\n${log.slice(-2000)}`);
    });
}

export const stopGroup = (child: ChildProcess | undefined) => {
  if (child?.pid && child.exitCode === null) process.kill(-child.pid, 'SIGTERM');
};
