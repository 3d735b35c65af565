// RUNNER_PASS_PIPELINE=2: the batch loop sends the next pass while one is on the engine thread (which loads and
// tokenizes it meanwhile and runs the passes one at a time, runner/pass/pass.ts); every job still completes once.
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
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
  type S3Env,
} from './harness.ts';

let redis: RedisHandle;
let s3: S3Env;
let modelDir: string;
let runner: RunnerProcess | undefined;

beforeAll(async () => {
  const [s3Env, redisHandle, dir] = await Promise.all([ensureRadosgw(), startRedis('pipeline'), freshDir('pipeline')]);
  s3 = s3Env;
  redis = redisHandle;
  modelDir = await writeTinyCheckpoint(join(dir, 'tiny'));
}, 240_000);

afterAll(async () => {
  runner?.kill('SIGKILL');
  await runner?.exited;
  await redis?.stop();
});

it('the next pass starts before the running one completes, and every job completes exactly once', async () => {
  const tag = runTag('pipeline');
  runner = await spawnRunner(
    runnerEnv(
      { modelDir, redisUrl: redis.url, s3, bucket: tag, queue: tag },
      { RUNNER_BATCH_MAX_JOBS: '1', RUNNER_PASS_PIPELINE: '2' },
    ),
  );
  const r = runner;
  const client = new JobClient(r.url);
  const submit = (prompt: string) =>
    client.submit({ type: 'completion', model: 'tiny', prompt, max_tokens: 2, decimation: 'off' });
  const ids = [
    (await submit('word '.repeat(5_000))).body.id, // ~15K tokens: over a second on the engine
    (await submit('second job')).body.id,
    (await submit('third job')).body.id,
  ];
  const started = (id: string) => r.logs.some((l) => l.msg === 'pass start' && (l.jobs as string[]).includes(id));
  const completed = (id: string) => r.logs.filter((l) => l.msg === 'job completed' && l.id === id);
  await r.waitForLog((l) => l.msg === 'pass start' && (l.jobs as string[]).includes(ids[1]!));
  expect(started(ids[0]!)).toBe(true);
  expect(completed(ids[0]!)).toHaveLength(0); // the long job is still on the engine
  for (const id of ids) expect((await client.waitDone(id, 60_000)).status).toBe('succeeded');
  // A job's status is written before its log line: wait for each line, since the passes overlap.
  for (const id of ids) await r.waitForLog((l) => l.msg === 'job completed' && l.id === id);
  for (const id of ids) expect(completed(id)).toHaveLength(1);
  r.kill('SIGTERM');
  expect(await r.exited).toBe(0);
}, 120_000);
