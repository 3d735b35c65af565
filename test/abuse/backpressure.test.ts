// Backpressure: the edge's gate (worker/http/edge-gate.ts) bounds edge inference per process and refuses the
// overflow with 503 + Retry-After; the runner's intake refuses new jobs past RUNNER_MAX_QUEUE_DEPTH. Real edge on
// Node, real intake with Redis and radosgw (no worker role, so jobs stay queued).
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeGate } from '../../worker/http/edge-gate.ts';
import type { RunningEdge } from '../../worker/node-server.ts';
import { OTHER_KEY, isOpenAiError, post, startEdge, tinyEdgeModel } from '../edge/helpers.ts';
import { MemoryRateLimiter } from '../../worker/http/rate-limit.ts';
import {
  JobClient,
  ensureRadosgw,
  freshDir,
  runTag,
  runnerEnv,
  sleep,
  spawnRunner,
  startRedis,
  writeTinyCheckpoint,
  type RedisHandle,
  type RunnerProcess,
} from '../runner/harness.ts';

describe('EdgeGate', () => {
  it('runs `running` at once, queues `queued` more in order, refuses the rest with 503 edge_busy', async () => {
    const gate = new EdgeGate(1, 1);
    const first = await gate.acquire();
    const order: string[] = [];
    const second = gate.acquire().then((release) => (order.push('second'), release));
    await expect(gate.acquire()).rejects.toMatchObject({ status: 503, code: 'edge_busy' });
    expect(gate.inFlight).toBe(2);
    first();
    first(); // releasing twice frees one slot only
    const release2 = await second;
    expect(order).toEqual(['second']);
    const third = gate.acquire();
    await expect(Promise.race([third.then(() => 'got'), sleep(20).then(() => 'waiting')])).resolves.toBe('waiting');
    release2();
    (await third)();
    expect(gate.inFlight).toBe(0);
  });
});

describe('at the edge', () => {
  let edge: RunningEdge;
  beforeAll(async () => {
    const { edgeModel } = await tinyEdgeModel('abuse-backpressure');
    edge = await startEdge(edgeModel, { EDGE_MAX_RUNNING: '1', EDGE_MAX_QUEUED: '1', RATE_LIMIT_PER_MINUTE: '0' });
    await post(edge, '/v1/completions', { model: 'deciserve-mamba', prompt: 'warm', max_tokens: 1 }); // opens the model
  }, 120_000);
  afterAll(() => edge?.close());

  it('12 concurrent edge completions: 200s for what fits, 503 + Retry-After (OpenAI-shaped edge_busy) for the rest; then it serves again', async () => {
    const answers = await Promise.all(
      Array.from({ length: 12 }, async () => {
        const r = await post(edge, '/v1/completions', {
          model: 'deciserve-mamba',
          prompt: 'once upon a time',
          max_tokens: 24,
        });
        return { status: r.status, retryAfter: r.headers.get('retry-after'), body: (await r.json()) as any };
      }),
    );
    const ok = answers.filter((a) => a.status === 200);
    const busy = answers.filter((a) => a.status === 503);
    expect(ok.length + busy.length).toBe(12);
    expect(ok.length).toBeGreaterThanOrEqual(2);
    expect(busy.length).toBeGreaterThanOrEqual(1);
    for (const b of busy) {
      expect(isOpenAiError(b.body)).toBe(true);
      expect([b.body.error.code, Number(b.retryAfter)]).toEqual(['edge_busy', expect.any(Number)]);
      expect(Number(b.retryAfter)).toBeGreaterThan(0);
    }
    expect(
      (await post(edge, '/v1/completions', { model: 'deciserve-mamba', prompt: 'after the burst', max_tokens: 2 }))
        .status,
    ).toBe(200);
  });
});

describe('the token budget per key', () => {
  it('MemoryRateLimiter charges costs: within the minute a cost that does not fit is refused, a request count still counts 1', async () => {
    let now = 0;
    const tokens = new MemoryRateLimiter(1000, () => now);
    expect(await tokens.limit({ key: 'a', cost: 600 })).toEqual({ success: true });
    expect(await tokens.limit({ key: 'a', cost: 500 })).toEqual({ success: false }); // 600 + 500 > 1000
    expect(await tokens.limit({ key: 'a', cost: 400 })).toEqual({ success: true }); // exactly 1000
    expect(await tokens.limit({ key: 'b', cost: 1000 })).toEqual({ success: true }); // per key
    now = 2 * 60_000; // two minutes on: the window has passed
    expect(await tokens.limit({ key: 'a', cost: 1000 })).toEqual({ success: true });
    const requests = new MemoryRateLimiter(2, () => now);
    expect(
      [await requests.limit({ key: 'a' }), await requests.limit({ key: 'a' }), await requests.limit({ key: 'a' })].map(
        (r) => r.success,
      ),
    ).toEqual([true, true, false]);
  });

  it('the edge charges prompt + max_tokens before inference and answers 429 + Retry-After past RATE_LIMIT_TOKENS_PER_MINUTE', async () => {
    const { edgeModel } = await tinyEdgeModel('abuse-token-budget');
    const edge = await startEdge(edgeModel, {
      RATE_LIMIT_TOKENS_PER_MINUTE: '300',
      RATE_LIMIT_PER_MINUTE: '0',
      MAX_NEW_TOKENS: '100',
      MAX_PROMPT_TOKENS: '200',
    });
    try {
      const ask = () =>
        post(edge, '/v1/completions', { model: 'deciserve-mamba', prompt: 'a short prompt', max_tokens: 100 });
      expect((await ask()).status).toBe(200);
      expect((await ask()).status).toBe(200);
      const refused = await ask(); // ~3 × 110 tokens > 300
      const body = (await refused.json()) as any;
      expect([refused.status, body.error.code, refused.headers.get('retry-after')]).toEqual([
        429,
        'rate_limit_exceeded',
        '60',
      ]);
      expect(body.error.message).toMatch(/tokens per minute/);
      // Another key has its own budget.
      expect(
        (
          await post(
            edge,
            '/v1/completions',
            { model: 'deciserve-mamba', prompt: 'x', max_tokens: 100 },
            { authorization: `Bearer ${OTHER_KEY}` },
          )
        ).status,
      ).toBe(200);
    } finally {
      await edge.close();
    }
  }, 120_000);
});

describe('the edge CPU budget per key', () => {
  it('charges the estimated CPU ms of edge work before it runs: past RATE_LIMIT_EDGE_CPU_MS_PER_MINUTE, 429 + Retry-After without a runner', async () => {
    const { edgeModel } = await tinyEdgeModel('abuse-cpu-budget');
    const edge = await startEdge(edgeModel, {
      RATE_LIMIT_EDGE_CPU_MS_PER_MINUTE: '2500',
      RATE_LIMIT_PER_MINUTE: '0',
      MAX_NEW_TOKENS: '100',
      EDGE_DECODE_TOKENS_PER_S: '71', // fixed here, not the committed benchmark's rate
    });
    try {
      // max_tokens 100 at 71 tok/s is ~1.4 s of estimate.
      const ask = (auth?: string) =>
        post(
          edge,
          '/v1/completions',
          { model: 'deciserve-mamba', prompt: 'a short prompt', max_tokens: 100 },
          auth ? { authorization: auth } : {},
        );
      const first = await ask();
      expect(first.status).toBe(200);
      const refused = await ask();
      const body = (await refused.json()) as any;
      expect([refused.status, body.error.code, refused.headers.get('retry-after')]).toEqual([
        429,
        'rate_limit_exceeded',
        '60',
      ]);
      expect(body.error.message).toMatch(
        /ms of edge CPU; this API key's edge CPU budget \(2500 ms per minute\) is spent/,
      );
      // Cheap work still fits the rest of the budget, and another key has its own.
      expect(
        (await post(edge, '/v1/completions', { model: 'deciserve-mamba', prompt: 'x', max_tokens: 1 })).status,
      ).toBe(200);
      expect((await ask(`Bearer ${OTHER_KEY}`)).status).toBe(200);
    } finally {
      await edge.close();
    }
  }, 120_000);
});

describe('at the runner intake', () => {
  let redis: RedisHandle;
  let intake: RunnerProcess;
  beforeAll(async () => {
    const [s3, redisHandle, dir] = await Promise.all([
      ensureRadosgw(),
      startRedis('abuse-depth'),
      freshDir('abuse-depth'),
    ]);
    redis = redisHandle;
    const modelDir = await writeTinyCheckpoint(join(dir, 'tiny'));
    const tag = runTag('abuse-depth');
    intake = await spawnRunner(
      runnerEnv(
        { modelDir, redisUrl: redis.url, s3, bucket: tag, queue: tag },
        { RUNNER_ROLES: 'intake', RUNNER_MAX_QUEUE_DEPTH: '3' },
      ),
    );
  }, 240_000);
  afterAll(async () => {
    intake?.kill('SIGTERM');
    await intake?.exited;
    await redis?.stop();
  });

  it('past RUNNER_MAX_QUEUE_DEPTH waiting jobs, POST /jobs is 503 queue_full with Retry-After; status reads still work', async () => {
    const client = new JobClient(intake.url);
    const job = (i: number) => ({ type: 'completion', model: 'tiny', prompt: `queued ${i}`, max_tokens: 1 });
    const first = await Promise.all([0, 1, 2].map(async (i) => (await client.submit(job(i))).body.id));
    await sleep(1100); // the depth is read at most once a second
    const refused = await client.request('POST', '/jobs', JSON.stringify(job(3)));
    const body = (await refused.json()) as any;
    expect([refused.status, body.error.code, Number(refused.headers.get('retry-after')) > 0]).toEqual([
      503,
      'queue_full',
      true,
    ]);
    expect((await client.get(first[0]!)).status).toBe('queued');
  });
});
