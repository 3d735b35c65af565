// The production runner is the esbuild bundle (runner/build.ts), run by plain node as in infra/runner/Dockerfile:
// it must start, take a signed job, run it on its engine thread and store the result in S3 (real radosgw and Redis).
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildRunner } from '../../runner/build.ts';
import {
  ensureRadosgw,
  freshDir,
  JobClient,
  runnerEnv,
  runTag,
  spawnRunner,
  startRedis,
  writeTinyCheckpoint,
  type RedisHandle,
  type RunnerProcess,
} from './harness.ts';

let redis: RedisHandle;
let runner: RunnerProcess;

beforeAll(async () => {
  const [s3, redisHandle, dir] = await Promise.all([ensureRadosgw(), startRedis('built'), freshDir('built-runner')]);
  redis = redisHandle;
  const modelDir = await writeTinyCheckpoint(join(dir, 'tiny'));
  const bundle = await buildRunner(join(dir, 'dist'));
  const tag = runTag('built');
  runner = await spawnRunner(runnerEnv({ modelDir, redisUrl: redis.url, s3, bucket: tag, queue: tag }), {
    entry: [join(bundle, 'cli.js')],
  });
}, 120_000);

afterAll(async () => {
  runner?.kill('SIGTERM');
  await runner?.exited;
  await redis?.stop();
});

it('runs a job from the JavaScript bundle, without tsx', async () => {
  const client = new JobClient(runner.url);
  const { status, body } = await client.submit({
    type: 'completion',
    model: 'tiny',
    prompt: 'hello there world',
    max_tokens: 3,
  });
  expect(status).toBe(202);
  const view = await client.waitDone(body.id, 60_000);
  expect(view.status, JSON.stringify(view)).toBe('succeeded');
  const result = await client.result<{ usage: { completion_tokens: number } }>(view);
  expect(result.usage.completion_tokens).toBe(3);
  expect(runner.output()).not.toMatch(/tsx/);
});
