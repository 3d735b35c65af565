// Results are written once (runner/pass/batch-loop.ts, runner/store/s3-store.ts putOnce) against real radosgw and Redis: a job
// whose result is already stored completes as a duplicate without running, and a result that appears while the job
// runs wins over the runner's own (If-None-Match: * → 412 → 'duplicate').
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketFromEnv, type BenchBucket } from '../../bench/quality/s3.ts';
import { jobIdFor } from '../../runner/store/jobs.ts';
import {
  JobClient,
  ensureRadosgw,
  freshDir,
  runTag,
  runnerEnv,
  spawnRunner,
  startRedis,
  writeTinyCheckpoint,
  type RedisHandle,
  type RunnerProcess,
} from './harness.ts';

let redis: RedisHandle;
let runner: RunnerProcess;
let client: JobClient;
let bucket: BenchBucket;

// ~15K tokens: over a second of prefill for the tiny model, time to store a result while the job runs.
const LONG_PROMPT = 'word '.repeat(5_000);

beforeAll(async () => {
  const [s3, redisHandle, dir] = await Promise.all([
    ensureRadosgw(),
    startRedis('write-once'),
    freshDir('runner-write-once'),
  ]);
  redis = redisHandle;
  const modelDir = await writeTinyCheckpoint(join(dir, 'tiny'));
  const tag = runTag('write-once');
  runner = await spawnRunner(
    runnerEnv(
      { modelDir, redisUrl: redis.url, s3, bucket: tag, queue: tag },
      { RUNNER_MAX_PROMPT_TOKENS: '100000', RUNNER_IDLE_POLL_MS: '100' },
    ),
  );
  client = new JobClient(runner.url);
  bucket = bucketFromEnv({ ...s3, S3_BUCKET: tag })!; // the runner created the bucket
}, 240_000);

afterAll(async () => {
  runner?.kill('SIGTERM');
  await runner?.exited;
  await redis?.stop();
});

const storeResult = (id: string, value: unknown) =>
  bucket.client.send(
    new PutObjectCommand({
      Bucket: bucket.bucket,
      Key: `results/${id}.json`,
      Body: JSON.stringify(value),
      ContentType: 'application/json',
    }),
  );

/** Count of a stage in the runner's job_stage_seconds histogram. */
async function stageCount(stage: string): Promise<number> {
  const text = await (await fetch(`${runner.url}/metrics`)).text();
  const line = text
    .split('\n')
    .find((l) => l.startsWith('deciserve_runner_job_stage_seconds_count') && l.includes(`stage="${stage}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}
const outcomeOf = (id: string) => runner.logs.find((l) => l.msg === 'job completed' && l.id === id)?.outcome;

describe('write-once results', () => {
  it('a job whose result is already stored completes as a duplicate: the engine never runs and the stored result stays', async () => {
    const key = `write-once-stored-${Date.now()}`;
    const id = jobIdFor(key);
    await storeResult(id, { id, object: 'text_completion', marker: 'stored before the job ran' });
    const loadsBefore = await stageCount('load_input');
    const { status, body } = await client.submit(
      { type: 'completion', model: 'tiny', prompt: 'hello there', max_tokens: 2 },
      key,
    );
    expect(status).toBe(202);
    expect(body.id).toBe(id);
    const view = await client.waitDone(id);
    expect(view.status).toBe('succeeded');
    expect(await client.result(view)).toMatchObject({ marker: 'stored before the job ran' });
    await runner.waitForLog((l) => l.msg === 'job completed' && l.id === id);
    expect(outcomeOf(id)).toBe('duplicate');
    expect(await stageCount('load_input')).toBe(loadsBefore); // it returned before reading its input
  });

  it("a result stored while the job runs wins: the runner's conditional write gets 412 and the job completes as a duplicate", async () => {
    const [writesBefore, loadsBefore] = [await stageCount('write_result'), await stageCount('load_input')];
    const { body } = await client.submit({
      type: 'completion',
      model: 'tiny',
      prompt: LONG_PROMPT,
      max_tokens: 2,
      decimation: 'off',
    });
    await runner.waitForLog((l) => l.msg === 'pass start' && (l.jobs as string[]).includes(body.id));
    // The pass has checked for a result (before the engine starts) and is now prefilling ~15K tokens.
    const loaded = Date.now();
    while ((await stageCount('load_input')) === loadsBefore && Date.now() - loaded < 5000)
      await new Promise((r) => setTimeout(r, 20));
    await storeResult(body.id, { id: body.id, object: 'text_completion', marker: 'written by another attempt' });
    const view = await client.waitDone(body.id, 60_000);
    expect(view.status).toBe('succeeded');
    expect(await client.result(view)).toMatchObject({ marker: 'written by another attempt' });
    await runner.waitForLog((l) => l.msg === 'job completed' && l.id === body.id);
    expect(outcomeOf(body.id)).toBe('duplicate');
    expect(await stageCount('write_result')).toBe(writesBefore + 1); // it did try its own write, and lost
  }, 90_000);
});
