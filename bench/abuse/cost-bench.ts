// How long issue #13's CPU bombs hold the event loop, seen from outside: the edge (Node, child process, shipped
// edge model) and the runner's intake (child process, shipped tokenizer) are polled on /healthz, from a process of
// its own, while bombs are in flight. A /healthz reply's latency bounds the longest stretch the server's event loop
// was busy meanwhile.
//   npx tsx bench/abuse/cost-bench.ts [--out bench/results/abuse-cost.json]
// Needs radosgw + Redis (infra/local/ci-services.sh start) and dist/edge-model (npm run edge:model).
// Wall-clock latencies (ms, performance.now(), sub-ms precision) on a shared machine: single runs, not a statistic
// over repeated trials; n is the number of /healthz replies behind each figure.
import { fork, spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createNodeEdgeApp } from '../../worker/node-server.ts';
import { join } from 'node:path';
import {
  JobClient,
  REPO,
  ensureRadosgw,
  freePort,
  runTag,
  runnerEnv,
  spawnRunner,
  startRedis,
  waitFor,
} from '../../test/runner/harness.ts';

const KEY = 'bench-abuse-key-0123456789abcdef';
const out = process.argv.includes('--out')
  ? process.argv[process.argv.indexOf('--out') + 1]!
  : join(REPO, 'bench/results/abuse-cost.json');

const BOMBS: Record<string, string> = {
  'digits 600K': '7'.repeat(600_000),
  'digits 1M': '7'.repeat(1_000_000),
  'combining accents 60 KB': 'e' + '\u0301'.repeat(30_000),
  'accents with spaces 60 KB': 'e\u0301 '.repeat(15_000),
  'prose past 131072 tokens': ' the end'.repeat(140_000),
};

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
const round = (x: number) => Math.round(x * 10) / 10;

/** /healthz polled from a child process (bench/abuse/health-poller.ts) until `done` settles; sorted latencies. */
async function pollHealth(url: string, done: Promise<unknown>): Promise<number[]> {
  const child = fork(join(import.meta.dirname, 'health-poller.ts'), { execArgv: ['--import', 'tsx'] });
  const next = () => new Promise<unknown>((resolve) => child.once('message', resolve));
  const started = next();
  child.send({ url });
  await started;
  await done;
  const latencies = next();
  child.send({ stop: true });
  const lat = (await latencies) as number[];
  return lat.sort((a, b) => a - b);
}

async function measure(healthUrl: string, fire: Array<() => Promise<Response>>) {
  let release!: () => void;
  const go = new Promise<void>((r) => (release = r));
  const t0 = { at: 0 };
  const answers = go.then(() => {
    t0.at = performance.now();
    return Promise.all(
      fire.map((f) =>
        f().then(async (r) => ({
          status: r.status,
          code: ((await r.json()) as any)?.error?.code ?? null,
          ms: performance.now() - t0.at,
        })),
      ),
    );
  });
  const polling = pollHealth(healthUrl, answers);
  await new Promise((r) => setTimeout(r, 50)); // the poller is running before the bombs go
  release();
  const [lat, done] = await Promise.all([polling, answers]);
  return {
    statuses: [...new Set(done.map((d) => `${d.status} ${d.code ?? ''}`.trim()))],
    lastAnswerMs: round(Math.max(...done.map((d) => d.ms))),
    health: {
      n: lat.length,
      p50Ms: round(percentile(lat, 0.5)),
      p99Ms: round(percentile(lat, 0.99)),
      maxMs: round(lat.at(-1) ?? NaN),
    },
  };
}

async function main() {
  const loadAtStart = loadavg()[0]; // a shared machine: other work here is in these figures
  const [s3, redis] = await Promise.all([ensureRadosgw(), startRedis('bench-abuse')]);
  const tag = runTag('bench-abuse');
  const runner = await spawnRunner(
    runnerEnv(
      { modelDir: join(REPO, 'models/deciserve-mamba'), redisUrl: redis.url, s3, bucket: tag, queue: tag },
      { RUNNER_ROLES: 'intake', RUNNER_MODEL_ID: 'deciserve-mamba' },
    ),
  );
  const port = await freePort();
  const edgeProc = spawn(process.execPath, ['--import', 'tsx', join(REPO, 'worker/node-server.ts')], {
    cwd: REPO,
    env: {
      ...process.env,
      MODEL_DIR: join(REPO, 'dist/edge-model'),
      API_KEYS: KEY,
      PORT: String(port),
      RATE_LIMIT_PER_MINUTE: '0',
    },
    stdio: 'ignore',
  });
  const edgeUrl = `http://127.0.0.1:${port}`;
  await waitFor(
    'edge',
    () =>
      fetch(`${edgeUrl}/healthz`)
        .then((r) => r.ok)
        .catch(() => false),
    60_000,
  );
  const client = new JobClient(runner.url);
  const edgeBomb = (prompt: string) => () =>
    fetch(`${edgeUrl}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'deciserve-mamba', prompt, max_tokens: 1 }),
    });
  const jobBomb = (prompt: string) => () =>
    client.request(
      'POST',
      '/jobs',
      JSON.stringify({ type: 'completion', model: 'deciserve-mamba', prompt, max_tokens: 1 }),
    );
  // The edge opens its model on the first request: do that before measuring.
  await edgeBomb('warm up')().then((r) => r.arrayBuffer());

  const rows: Array<{ target: string; bombs: string; inFlight: number } & Awaited<ReturnType<typeof measure>>> = [];
  try {
    for (const [target, healthUrl, bomb] of [
      ['edge', `${edgeUrl}/healthz`, edgeBomb],
      ['runner intake', `${runner.url}/healthz`, jobBomb],
    ] as const) {
      for (const [name, prompt] of Object.entries(BOMBS))
        rows.push({ target, bombs: name, inFlight: 1, ...(await measure(healthUrl, [bomb(prompt)])) });
      const mix = Object.values(BOMBS);
      rows.push({
        target,
        bombs: 'all five kinds, 4 each',
        inFlight: 20,
        ...(await measure(
          healthUrl,
          Array.from({ length: 20 }, (_, i) => bomb(mix[i % mix.length]!)),
        )),
      });
    }
  } finally {
    edgeProc.kill('SIGTERM');
    runner.kill('SIGTERM');
    await runner.exited;
    await redis.stop();
  }

  // Event-loop time per bomb: the edge app in this process (the same app and thread meter as the child above),
  // one request at a time, main-thread busy time from performance.eventLoopUtilization() over the request.
  const app = createNodeEdgeApp({ API_KEYS: KEY, RATE_LIMIT_PER_MINUTE: '0' }, join(REPO, 'dist/edge-model'));
  const call = async (body: string): Promise<Response> =>
    app.fetch(
      new Request('http://edge/v1/completions', {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body,
      }),
    );
  await call(JSON.stringify({ model: 'deciserve-mamba', prompt: 'warm up', max_tokens: 1 })).then((r) =>
    r.arrayBuffer(),
  );
  const eventLoop = [];
  for (const [name, prompt] of Object.entries(BOMBS)) {
    const body = JSON.stringify({ model: 'deciserve-mamba', prompt, max_tokens: 1 });
    const before = performance.eventLoopUtilization();
    const t0 = performance.now();
    const res = await call(body);
    const code = ((await res.json()) as { error?: { code?: string } }).error?.code ?? '';
    eventLoop.push({
      bombs: name,
      status: `${res.status} ${code}`.trim(),
      eventLoopMs: round(performance.eventLoopUtilization(before).active),
      wallMs: round(performance.now() - t0),
    });
  }

  const result = {
    command: `npx tsx bench/abuse/cost-bench.ts${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}`,
    date: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model,
      node: process.version,
      loadAverage1mAtStart: loadAtStart,
      loadAverage1mAtEnd: loadavg()[0],
    },
    method:
      'wall-clock /healthz latency polled back-to-back from a separate process (bench/abuse/health-poller.ts; earlier runs polled from the process sending the bombs, whose own work was in the figures) while the bombs are in flight; max bounds the event-loop stall; single run',
    targets: { bombMaxBlockingMs: 100, healthP99MsWith20InFlight: 50 },
    rows,
    eventLoopPerBomb: {
      method:
        'edge app in-process, one request at a time; main-thread event-loop busy ms (performance.eventLoopUtilization) vs wall ms',
      rows: eventLoop,
    },
  };
  await writeFile(out, JSON.stringify(result, null, 2) + '\n');
  console.log('| target | bombs | in flight | answers | last answer ms | health n | p50 ms | p99 ms | max ms |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of rows)
    console.log(
      `| ${r.target} | ${r.bombs} | ${r.inFlight} | ${r.statuses.join(', ')} | ${r.lastAnswerMs} | ${r.health.n} | ${r.health.p50Ms} | ${r.health.p99Ms} | ${r.health.maxMs} |`,
    );
  console.log('\n| edge bomb (in-process) | answer | event-loop ms | wall ms |\n|---|---|---|---|');
  for (const r of eventLoop) console.log(`| ${r.bombs} | ${r.status} | ${r.eventLoopMs} | ${r.wallMs} |`);
  console.log(`wrote ${out}`);
}

await main();
