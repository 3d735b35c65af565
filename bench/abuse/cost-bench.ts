// How long issue #13's CPU bombs hold the event loop, seen from outside: the edge (Node, child process, shipped
// edge model) and the runner's intake (child process, shipped tokenizer) are polled on /healthz while bombs are in
// flight. A /healthz reply's latency bounds the longest stretch the server's event loop was busy meanwhile.
//   npx tsx bench/abuse/cost-bench.ts [--out bench/results/abuse-cost.json]
// Needs radosgw + Redis (infra/local/ci-services.sh start) and dist/edge-model (npm run edge:model).
// Wall-clock latencies (ms, performance.now(), sub-ms precision) on a shared machine: single runs, not a statistic
// over repeated trials; n is the number of /healthz replies behind each figure.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { JobClient, REPO, ensureRadosgw, freePort, runTag, runnerEnv, spawnRunner, startRedis, waitFor } from '../../test/runner/harness.ts';

const KEY = 'bench-abuse-key-0123456789abcdef';
const out = process.argv.includes('--out') ? process.argv[process.argv.indexOf('--out') + 1]! : join(REPO, 'bench/results/abuse-cost.json');

const BOMBS: Record<string, string> = {
  'digits 600K': '7'.repeat(600_000),
  'digits 1M': '7'.repeat(1_000_000),
  'combining accents 60 KB': 'e' + '\u0301'.repeat(30_000),
  'accents with spaces 60 KB': 'e\u0301 '.repeat(15_000),
  'prose past 131072 tokens': ' the end'.repeat(140_000),
};

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
const round = (x: number) => Math.round(x * 10) / 10;

async function pollHealth(url: string, until: () => boolean): Promise<number[]> {
  const lat: number[] = [];
  while (!until()) {
    const t0 = performance.now();
    await fetch(url).then((r) => r.arrayBuffer());
    lat.push(performance.now() - t0);
  }
  return lat.sort((a, b) => a - b);
}

async function measure(healthUrl: string, fire: Array<() => Promise<Response>>) {
  let settled = 0;
  const t0 = performance.now();
  const answers = Promise.all(fire.map((f) => f().then(async (r) => ({ status: r.status, code: ((await r.json()) as any)?.error?.code ?? null, ms: performance.now() - t0 })).finally(() => settled++)));
  const lat = await pollHealth(healthUrl, () => settled === fire.length);
  const done = await answers;
  return {
    statuses: [...new Set(done.map((d) => `${d.status} ${d.code ?? ''}`.trim()))],
    lastAnswerMs: round(Math.max(...done.map((d) => d.ms))),
    health: { n: lat.length, p50Ms: round(percentile(lat, 0.5)), p99Ms: round(percentile(lat, 0.99)), maxMs: round(lat.at(-1) ?? NaN) },
  };
}

async function main() {
  const [s3, redis] = await Promise.all([ensureRadosgw(), startRedis('bench-abuse')]);
  const tag = runTag('bench-abuse');
  const runner = await spawnRunner(runnerEnv({ modelDir: join(REPO, 'models/deciserve-mamba'), redisUrl: redis.url, s3, bucket: tag, queue: tag }, { RUNNER_ROLES: 'intake', RUNNER_MODEL_ID: 'deciserve-mamba' }));
  const port = await freePort();
  const edgeProc = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'worker/node-server.ts')], {
    cwd: REPO,
    env: { ...process.env, MODEL_DIR: join(REPO, 'dist/edge-model'), API_KEYS: KEY, PORT: String(port), RATE_LIMIT_PER_MINUTE: '0' },
    stdio: 'ignore',
  });
  const edgeUrl = `http://127.0.0.1:${port}`;
  await waitFor('edge', () => fetch(`${edgeUrl}/healthz`).then((r) => r.ok).catch(() => false), 60_000);
  const client = new JobClient(runner.url);
  const edgeBomb = (prompt: string) => () => fetch(`${edgeUrl}/v1/completions`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'deciserve-mamba', prompt, max_tokens: 1 }) });
  const jobBomb = (prompt: string) => () => client.request('POST', '/jobs', JSON.stringify({ type: 'completion', model: 'deciserve-mamba', prompt, max_tokens: 1 }));
  // The edge opens its model on the first request: do that before measuring.
  await edgeBomb('warm up')().then((r) => r.arrayBuffer());

  const rows: Array<{ target: string; bombs: string; inFlight: number } & Awaited<ReturnType<typeof measure>>> = [];
  try {
    for (const [target, healthUrl, bomb] of [['edge', `${edgeUrl}/healthz`, edgeBomb], ['runner intake', `${runner.url}/healthz`, jobBomb]] as const) {
      for (const [name, prompt] of Object.entries(BOMBS)) rows.push({ target, bombs: name, inFlight: 1, ...(await measure(healthUrl, [bomb(prompt)])) });
      const mix = Object.values(BOMBS);
      rows.push({ target, bombs: 'all five kinds, 4 each', inFlight: 20, ...(await measure(healthUrl, Array.from({ length: 20 }, (_, i) => bomb(mix[i % mix.length]!)))) });
    }
  } finally {
    edgeProc.kill('SIGTERM');
    runner.kill('SIGTERM');
    await runner.exited;
    await redis.stop();
  }

  const result = {
    command: `npx tsx bench/abuse/cost-bench.ts${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}`,
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    method: 'wall-clock /healthz latency polled back-to-back from this process while the bombs are in flight; max bounds the event-loop stall; single run',
    targets: { bombMaxBlockingMs: 100, healthP99MsWith20InFlight: 50 },
    rows,
  };
  await writeFile(out, JSON.stringify(result, null, 2) + '\n');
  console.log('| target | bombs | in flight | answers | last answer ms | health n | p50 ms | p99 ms | max ms |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(`| ${r.target} | ${r.bombs} | ${r.inFlight} | ${r.statuses.join(', ')} | ${r.lastAnswerMs} | ${r.health.n} | ${r.health.p50Ms} | ${r.health.p99Ms} | ${r.health.maxMs} |`);
  console.log(`wrote ${out}`);
}

await main();
