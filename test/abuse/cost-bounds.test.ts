// Issue #13's CPU bombs against the edge (Node, tiny model) and the runner's intake (the shipped tokenizer, which
// splits digits): each is answered with a 4xx before the tokenizing it would cost, and /healthz keeps answering while
// 20 bombs that must be counted in full are in flight. No timing assertions: "health answered during the bombs" is
// checked by order (health replies that arrived before the last bomb's reply). Timings: bench/abuse/cost-bench.ts.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEdge } from '../../worker/node-server.ts';
import { expectError, post, startEdge, tinyEdgeModel } from '../edge/helpers.ts';
import {
  JobClient,
  REPO,
  ensureRadosgw,
  runTag,
  runnerEnv,
  spawnRunner,
  startRedis,
  type RedisHandle,
  type RunnerProcess,
} from '../runner/harness.ts';

const MAX_PROMPT_TOKENS = 20_000;
let edge: RunningEdge;
let redis: RedisHandle;
let intake: RunnerProcess;
let client: JobClient;

beforeAll(async () => {
  const [{ edgeModel }, s3, redisHandle] = await Promise.all([
    tinyEdgeModel('abuse-cost'),
    ensureRadosgw(),
    startRedis('abuse-cost'),
  ]);
  redis = redisHandle;
  // Scoring at 1 token/s: echo + logprobs on a 20-token prompt is estimated at 20 s, past the 10 s CPU budget.
  edge = await startEdge(edgeModel, { MAX_PROMPT_TOKENS: String(MAX_PROMPT_TOKENS), EDGE_SCORE_TOKENS_PER_S: '1' });
  const tag = runTag('abuse-cost');
  const env = runnerEnv(
    { modelDir: join(REPO, 'models/deciserve-mamba'), redisUrl: redis.url, s3, bucket: tag, queue: tag },
    { RUNNER_ROLES: 'intake', RUNNER_MODEL_ID: 'deciserve-mamba', RUNNER_MAX_PROMPT_TOKENS: String(MAX_PROMPT_TOKENS) },
  );
  intake = await spawnRunner(env);
  client = new JobClient(intake.url);
}, 240_000);

afterAll(async () => {
  intake?.kill('SIGTERM');
  await intake?.exited;
  await edge?.close();
  await redis?.stop();
});

const completion = (prompt: string) => ({ model: 'deciserve-mamba', prompt, max_tokens: 1 });
const job = (prompt: string) => ({ type: 'completion', model: 'deciserve-mamba', prompt, max_tokens: 1 });
// Prose just past the limit: no bound refuses it, so it is counted slice by slice until the count passes the limit.
const proseBomb = ' the end'.repeat(MAX_PROMPT_TOKENS + 10);

/** Fires `bombs`, polls `health` until they all settle; returns the bombs' responses and the health statuses seen meanwhile. */
async function healthDuring(bombs: Array<() => Promise<Response>>, health: () => Promise<Response>) {
  let settled = 0;
  const responses = Promise.all(
    bombs.map((fire) =>
      fire()
        .then(async (r) => ({ status: r.status, body: await r.json() }))
        .finally(() => settled++),
    ),
  );
  const seen: number[] = [];
  while (settled < bombs.length) seen.push((await health()).status);
  return { responses: await responses, healthDuring: seen };
}

describe('edge', () => {
  it('600,000 digits (past the limit by bytes alone): 400 before tokenizing; a combining-accent bomb (one 30,001-character run, ~60,000 tokens): 400 once its forced slices pass the limit', async () => {
    await expectError(
      await post(edge, '/v1/completions', completion('7'.repeat(600_000))),
      400,
      'context_length_exceeded',
    );
    await expectError(
      await post(edge, '/v1/completions', completion('e' + '\u0301'.repeat(30_000))),
      400,
      'context_length_exceeded',
    );
  });

  it('a prompt whose byte count alone puts it past the limit: 400 context_length_exceeded ("at least")', async () => {
    const res = await post(edge, '/v1/completions', completion('word '.repeat(60_000)));
    const body = (await res.clone().json()) as { error: { message: string } };
    await expectError(res, 400, 'context_length_exceeded');
    expect(body.error.message).toMatch(/^at least \d+ prompt tokens/);
  });

  it('/healthz answers while 20 prose bombs are counted; each bomb stops just past the limit', async () => {
    const fire = () => post(edge, '/v1/completions', completion(proseBomb));
    const { responses, healthDuring: seen } = await healthDuring(
      Array.from({ length: 20 }, () => fire),
      () => fetch(`${edge.url}/healthz`),
    );
    for (const r of responses)
      expect([r.status, (r.body as any).error.code, (r.body as any).error.message]).toEqual([
        400,
        'context_length_exceeded',
        expect.stringMatching(/^more than \d+ prompt tokens/),
      ]);
    expect(seen.length).toBeGreaterThan(2);
    expect(new Set(seen)).toEqual(new Set([200]));
  }, 120_000);

  it('echo + logprobs past the CPU budget is refused up front; the same prompt without them runs at the edge', async () => {
    const prompt = 'the end of the end of the key';
    const refused = await post(edge, '/v1/completions', { ...completion(prompt), echo: true, logprobs: 1 });
    const body = (await refused.clone().json()) as { error: { param: string; message: string } };
    await expectError(refused, 400, 'unsupported_parameter');
    expect([body.error.param, body.error.message]).toEqual([
      'logprobs',
      expect.stringContaining('ms CPU > edge budget'),
    ]);
    const plain = await post(edge, '/v1/completions', { ...completion(prompt), logprobs: 1 });
    expect([plain.status, plain.headers.get('x-deciserve-ran-on')]).toEqual([200, 'edge']);
  });

  it('chat messages are bounded the same way', async () => {
    const res = await post(edge, '/v1/chat/completions', {
      model: 'deciserve-mamba',
      messages: [{ role: 'user', content: 'e' + '\u0301'.repeat(30_000) }],
    });
    await expectError(res, 400, 'context_length_exceeded');
  });
});

describe('runner intake (shipped tokenizer: digits are one token each)', () => {
  const submit = async (prompt: string) => {
    const res = await client.request('POST', '/jobs', JSON.stringify(job(prompt)));
    return res;
  };

  it('a 1,000,000-digit job: 400 context_length_exceeded from the bound alone', async () => {
    const res = await submit('7'.repeat(1_000_000));
    const body = (await res.clone().json()) as { error: { message: string } };
    await expectError(res, 400, 'context_length_exceeded');
    expect(body.error.message).toMatch(/^at least 1000000 prompt tokens/);
  });

  it('a combining-accent bomb (~60,000 tokens in one run): 400 once its forced slices pass the limit', async () => {
    await expectError(await submit('e' + '\u0301'.repeat(30_000)), 400, 'context_length_exceeded');
  });

  it('/healthz answers while 20 prose bombs are counted', async () => {
    const { responses, healthDuring: seen } = await healthDuring(
      Array.from({ length: 20 }, () => () => submit(proseBomb)),
      () => fetch(`${intake.url}/healthz`),
    );
    for (const r of responses) expect([r.status, (r.body as any).error.code]).toEqual([400, 'context_length_exceeded']);
    expect(seen.length).toBeGreaterThan(2);
    expect(new Set(seen)).toEqual(new Set([200]));
  }, 120_000);

  it('a prompt under the limit is still accepted', async () => {
    const res = await submit(' the end'.repeat(100));
    expect(res.status).toBe(202);
  });
});
