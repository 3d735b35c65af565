// vitest globalSetup (Node side) for the workerd edge tests: a real runner serving the shipped model, with its own
// Redis and the local radosgw, on the port vitest.config.ts gave the Worker as RUNNER_URL. Stopped after the run.
import { join } from 'node:path';
import { REPO, ensureRadosgw, runTag, runnerEnv, spawnRunner, startRedis } from '../../runner/harness.ts';

export default async function setup(): Promise<() => Promise<void>> {
  const port = process.env.WORKERD_TEST_RUNNER_PORT;
  const secret = process.env.WORKERD_TEST_RUNNER_SECRET;
  if (!port || !secret) throw new Error('runner-setup: vitest.config.ts sets WORKERD_TEST_RUNNER_PORT and _SECRET');
  const [s3, redis] = await Promise.all([ensureRadosgw(), startRedis('edge-workerd')]);
  const tag = runTag('edge-workerd');
  const runner = await spawnRunner(
    runnerEnv(
      { modelDir: join(REPO, 'models/deciserve-mamba'), redisUrl: redis.url, s3, bucket: tag, queue: tag },
      { RUNNER_MODEL_ID: 'deciserve-mamba', RUNNER_HMAC_SECRET: secret, RUNNER_PORT: port },
    ),
  );
  return async () => {
    runner.kill('SIGTERM');
    await runner.exited;
    await redis.stop();
  };
}
