// A long CJK paragraph (12,000 Han characters, no whitespace, digit or punctuation: one run past MAX_RUN_CHARS) was
// a 400 word_too_long; now the edge (Node, the shipped model) and the runner's intake (shipped tokenizer, on its
// thread) count it in forced slices and accept it, with prompt_tokens at or just above the exact count. Real intake
// with Redis and radosgw (intake role only: the job is accepted and stays queued).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer } from '../../mamba/tokenizer.ts';
import { MAX_RUN_CHARS, SLICE_CHARS } from '../../mamba/token-budget.ts';
import { buildEdgeModel } from '../../worker/model/build.ts';
import type { RunningEdge } from '../../worker/node-server.ts';
import { post, startEdge } from '../edge/helpers.ts';
import {
  JobClient,
  REPO,
  SECRET,
  ensureRadosgw,
  runTag,
  runnerEnv,
  spawnRunner,
  startRedis,
  type RedisHandle,
  type RunnerProcess,
} from '../runner/harness.ts';

const model = 'deciserve-mamba';
const HAN = '中文的段落没有空格这是一个很长的句子我们需要测试分词器的速度和正确性';
const paragraph = Array.from({ length: 12_000 }, (_, i) => HAN[(i * 7) % HAN.length]).join('');
const shipped = loadTokenizer(JSON.parse(readFileSync(join(REPO, 'models/deciserve-mamba/tokenizer.json'), 'utf8')));
const exact = shipped.encode(paragraph).length;
const forcedCuts = Math.ceil((paragraph.length - MAX_RUN_CHARS) / SLICE_CHARS);

let redis: RedisHandle;
let intake: RunnerProcess;
let edge: RunningEdge;

beforeAll(async () => {
  const [s3, redisHandle, edgeModel] = await Promise.all([
    ensureRadosgw(),
    startRedis('long-runs'),
    buildEdgeModel().then((built) => built.dir),
  ]);
  redis = redisHandle;
  const tag = runTag('long-runs');
  intake = await spawnRunner(
    runnerEnv(
      { modelDir: join(REPO, 'models/deciserve-mamba'), redisUrl: redis.url, s3, bucket: tag, queue: tag },
      { RUNNER_ROLES: 'intake', RUNNER_MODEL_ID: model },
    ),
  );
  edge = await startEdge(edgeModel, { MODEL_ID: model, RUNNER_URL: intake.url, RUNNER_HMAC_SECRET: SECRET });
}, 240_000);

afterAll(async () => {
  await edge?.close();
  intake?.kill('SIGTERM');
  await intake?.exited;
  await redis?.stop();
});

describe('a 12,000-character CJK paragraph without punctuation', () => {
  it('is accepted by the runner intake, prompt_tokens at or just above the exact count', async () => {
    const client = new JobClient(intake.url);
    const { status, body } = await client.submit({ type: 'completion', model, prompt: paragraph, max_tokens: 1 });
    expect([status, body.status]).toEqual([202, 'queued']);
    expect(exact).toBeGreaterThan(8192); // a job for the runner, not the edge
    expect(body.prompt_tokens).toBeGreaterThanOrEqual(exact);
    expect(body.prompt_tokens).toBeLessThanOrEqual(exact + 3 * forcedCuts);
  });

  it('is accepted at the edge and handed to the runner as a job (202 while it waits in the queue)', async () => {
    const response = await post(
      edge,
      '/v1/completions',
      { model, prompt: paragraph, max_tokens: 1 },
      { prefer: 'respond-async' },
    );
    const body = (await response.json()) as { id: string; status: string; prompt_tokens: number };
    expect([response.status, response.headers.get('x-deciserve-ran-on')], JSON.stringify(body)).toEqual([
      202,
      'runner',
    ]);
    expect(body.status).toBe('queued');
    expect(body.prompt_tokens).toBeGreaterThanOrEqual(exact);
  });
});
