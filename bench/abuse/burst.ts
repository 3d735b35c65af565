// 200 concurrent clients against the edge on Node for a bounded time: with the edge gate (EDGE_MAX_RUNNING /
// EDGE_MAX_QUEUED) every answer should be a 200 or a 503/429 with Retry-After, and the 200s' latency bounded.
//   npx tsx bench/abuse/burst.ts [--clients 200] [--seconds 10] [--out bench/results/abuse-burst.json]
// Needs dist/edge-model (npm run edge:model). Wall-clock latencies per request (performance.now()); one run.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { scriptArgs } from '../../mamba/script-args.ts';
import { REPO, freePort, sleep, waitFor } from '../../test/runner/harness.ts';

const values = scriptArgs(
  'npx tsx bench/abuse/burst.ts [options]\n200 concurrent clients against the edge on Node for a bounded time; ' +
    "tallies 200/429/503 and the 200s' latency (--running/--queued set EDGE_MAX_RUNNING/EDGE_MAX_QUEUED).",
  {
    running: { type: 'string' },
    queued: { type: 'string' },
    clients: { type: 'string', default: '200' },
    seconds: { type: 'string', default: '10' },
    out: { type: 'string', default: join(REPO, 'bench/results/abuse-burst.json') },
  },
);
const clients = Number(values.clients);
const seconds = Number(values.seconds);
const KEY = 'bench-burst-key-0123456789abcdef';
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;

const port = await freePort();
const gate = {
  ...(values.running ? { EDGE_MAX_RUNNING: values.running } : {}),
  ...(values.queued ? { EDGE_MAX_QUEUED: values.queued } : {}),
};
const edgeEnv = {
  MODEL_DIR: join(REPO, 'dist/edge-model'),
  API_KEYS: KEY,
  PORT: String(port),
  RATE_LIMIT_PER_MINUTE: '0',
  RATE_LIMIT_EDGE_CPU_MS_PER_MINUTE: '0',
  ...gate,
}; // the gate alone
const edge = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'worker/node-server.ts')], {
  cwd: REPO,
  env: { ...process.env, ...edgeEnv },
  stdio: 'ignore',
});
const url = `http://127.0.0.1:${port}`;
try {
  await waitFor(
    'edge',
    () =>
      fetch(`${url}/healthz`)
        .then((r) => r.ok)
        .catch(() => false),
    60_000,
  );
  const body = JSON.stringify({
    model: 'deciserve-mamba',
    prompt: 'In the beginning God created the heaven and the earth.',
    max_tokens: 16,
  });
  const send = () =>
    fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body,
    });
  await (await send()).arrayBuffer(); // model load outside the measurement

  const okMs: number[] = [];
  const statuses = new Map<string, number>();
  let withoutRetryAfter = 0;
  const end = Date.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (Date.now() < end) {
        const started = performance.now();
        const r = await send().catch(() => null);
        const ms = performance.now() - started;
        const status = r ? String(r.status) : 'network error';
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        if (r?.status === 200) okMs.push(ms);
        if (r && (r.status === 503 || r.status === 429)) {
          if (!r.headers.get('retry-after')) withoutRetryAfter++;
          await r.arrayBuffer();
          await sleep(Number(r.headers.get('retry-after') ?? 1) * 1000); // a well-behaved client backs off
        } else await r?.arrayBuffer();
      }
    }),
  );
  const wallS = (performance.now() - t0) / 1000;
  okMs.sort((a, b) => a - b);
  const result = {
    command: `npx tsx bench/abuse/burst.ts${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}`,
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    method:
      'closed loop: each client sends the next request when the last is answered, sleeping Retry-After after a 503/429; wall-clock latency; one run on a shared machine',
    edge: { EDGE_MAX_RUNNING: 'default', EDGE_MAX_QUEUED: 'default', ...gate },
    clients,
    seconds,
    wallS: Math.round(wallS * 10) / 10,
    statuses: Object.fromEntries(statuses),
    rejectedWithoutRetryAfter: withoutRetryAfter,
    ok: {
      n: okMs.length,
      perS: Math.round((okMs.length / wallS) * 10) / 10,
      p50Ms: Math.round(percentile(okMs, 0.5)),
      p99Ms: Math.round(percentile(okMs, 0.99)),
      maxMs: Math.round(okMs.at(-1) ?? NaN),
    },
    target: { okP99Ms: 5000 },
  };
  await writeFile(values.out!, JSON.stringify(result, null, 2) + '\n');
  console.log(
    '| clients | s | statuses | 200/s | 200 p50 ms | 200 p99 ms | 200 max ms | 503/429 without Retry-After |',
  );
  console.log('|---|---|---|---|---|---|---|---|');
  console.log(
    `| ${clients} | ${seconds} | ${JSON.stringify(result.statuses)} | ${result.ok.perS} | ${result.ok.p50Ms} | ${result.ok.p99Ms} | ${result.ok.maxMs} | ${withoutRetryAfter} |`,
  );
  console.log(`wrote ${values.out}`);
} finally {
  edge.kill('SIGTERM');
}
