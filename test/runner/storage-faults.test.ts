// Redis and S3 misbehaving: a Redis crash and restart, a Redis that lost everything, and S3 answering 503.
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from './fault-proxy.ts';
import {
  JobClient,
  ensureRadosgw,
  freshDir,
  runTag,
  runnerEnv,
  spawnRunner,
  startRedis,
  waitFor,
  writeTinyCheckpoint,
  type RedisHandle,
  type RunnerProcess,
  type S3Env,
} from './harness.ts';

let redis: RedisHandle;
let s3: S3Env;
let modelDir: string;
let proxy: FaultProxy;
const started: RunnerProcess[] = [];

beforeAll(async () => {
  const [s3Env, redisHandle, dir] = await Promise.all([
    ensureRadosgw(),
    startRedis('storage'),
    freshDir('runner-storage'),
  ]);
  s3 = s3Env;
  redis = redisHandle;
  modelDir = await writeTinyCheckpoint(join(dir, 'tiny'));
  proxy = await startFaultProxy(s3.S3_ENDPOINT);
}, 240_000);

afterAll(async () => {
  for (const r of started) r.kill('SIGKILL');
  await Promise.all(started.map((r) => r.exited));
  await proxy?.close();
  await redis?.stop();
});

async function runner(tag: string, extra: Record<string, string> = {}, s3Env: S3Env = s3): Promise<RunnerProcess> {
  const r = await spawnRunner(runnerEnv({ modelDir, redisUrl: redis.url, s3: s3Env, bucket: tag, queue: tag }, extra));
  started.push(r);
  return r;
}

async function stop(r: RunnerProcess): Promise<void> {
  r.kill('SIGTERM');
  await r.exited;
}

const job = (i: number) => ({ type: 'completion', model: 'tiny', prompt: `job number ${i}`, max_tokens: 2 });

describe('Redis failures', () => {
  it('a Redis crash (kill -9) and restart loses no accepted job, keeps priorities, and the worker carries on', async () => {
    const tag = runTag('redis-crash');
    const intake = await runner(tag, { RUNNER_ROLES: 'intake' });
    const client = new JobClient(intake.url);
    const priorities = [9, 5, 1, 7, 3];
    const ids: string[] = [];
    for (const [i, priority] of priorities.entries()) {
      const { status, body } = await client.submit({ ...job(i), priority });
      expect(status).toBe(202);
      ids.push(body.id);
    }
    await redis.kill9();
    await redis.start();
    const queue = new Queue(tag, { connection: { url: redis.url } });
    try {
      expect(await queue.getJobCountByTypes('waiting', 'prioritized')).toBe(5);
    } finally {
      await queue.close();
    }

    const worker = await runner(tag, { RUNNER_ROLES: 'worker', RUNNER_BATCH_MAX_JOBS: '1' });
    await waitFor('intake ready again', () => fetch(`${intake.url}/readyz`).then((r) => r.ok));
    for (const id of ids) expect((await client.waitDone(id)).status).toBe('succeeded');
    // Redis kept the jobs itself: the reconciler had nothing to re-enqueue.
    expect(worker.logs.filter((l) => l.msg === 'reconciled queue with S3')).toHaveLength(0);
    // One job per pass, most urgent first.
    const order = worker.logs.filter((l) => l.msg === 'pass start').map((l) => ids.indexOf((l.jobs as string[])[0]!));
    expect(order.map((i) => priorities[i])).toEqual([1, 3, 5, 7, 9]);

    // Crash Redis again under a running worker: it reconnects and takes new jobs.
    await redis.kill9();
    await redis.start();
    await waitFor('intake ready again', () => fetch(`${intake.url}/readyz`).then((r) => r.ok));
    const later = await client.submit(job(99));
    expect(later.status).toBe(202);
    expect((await client.waitDone(later.body.id)).status).toBe('succeeded');
    await Promise.all([stop(intake), stop(worker)]);
  }, 120_000);

  it('a Redis that lost all data is refilled from S3 when a runner starts', async () => {
    const tag = runTag('redis-wiped');
    const intake = await runner(tag, { RUNNER_ROLES: 'intake' });
    const client = new JobClient(intake.url);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await client.submit(job(i))).body.id);
    expect(await redis.cli('FLUSHALL')).toBe('OK');
    const worker = await runner(tag, { RUNNER_ROLES: 'worker' });
    for (const id of ids) expect((await client.waitDone(id)).status).toBe('succeeded');
    // The log line comes after the reconciler has also rebuilt the job index from S3, which can finish after the
    // tiny jobs it requeued have run: wait for it rather than reading the log at once.
    const reconciled = await worker.waitForLog((l) => l.msg === 'reconciled queue with S3');
    expect([...(reconciled.requeued as string[])].sort()).toEqual([...ids].sort());
    await Promise.all([stop(intake), stop(worker)]);
  }, 120_000);
});

describe('S3 failures', () => {
  it('retries S3 503s: inside one attempt, then across job attempts with backoff; intake answers 503 only past its budget', async () => {
    const tag = runTag('s3-faults');
    const r = await runner(
      tag,
      { S3_RETRY_FOR_MS: '1500', RUNNER_INTAKE_S3_RETRY_MS: '1500' },
      { ...s3, S3_ENDPOINT: proxy.url },
    );
    const client = new JobClient(r.url);

    // Intake during a long outage: not accepted (503 + Retry-After), so the edge retries with the same key.
    const outageStart = Date.now();
    proxy.failFor(2500);
    const refused = await client.request('POST', '/jobs', JSON.stringify(job(0)), {
      'idempotency-key': `${tag}-0`,
      'content-type': 'application/json',
    });
    expect(refused.status).toBe(503);
    // Only after retrying for the intake's whole budget (the 503 used to come ~1 s into a 5 s budget).
    expect(Date.now() - outageStart).toBeGreaterThanOrEqual(1500);
    expect(refused.headers.get('retry-after')).toBe('2');
    expect(await refused.json()).toMatchObject({ error: { code: 'storage_unavailable', type: 'server_error' } });
    await new Promise((res) => setTimeout(res, outageStart + 2600 - Date.now()));
    const accepted = await client.submit(job(0), `${tag}-0`);
    expect(accepted.status).toBe(202);

    // Intake during a short outage: its own retries absorb it.
    proxy.failNext(3);
    const absorbed = await client.submit(job(1));
    expect(absorbed.status).toBe(202);

    // An outage while the job runs, longer than one S3 call's retry budget: the attempt fails and BullMQ retries it.
    const before = proxy.served503;
    const running = await client.submit({ ...job(2), prompt: 'word '.repeat(1500) }); // ~0.3 s of engine time
    proxy.failFor(4000);
    for (const id of [accepted.body.id, absorbed.body.id, running.body.id]) {
      expect((await client.waitDone(id, 60_000)).status).toBe('succeeded');
    }
    expect(proxy.served503).toBeGreaterThan(before);
    expect(r.logs.some((l) => l.msg === 's3 call failed; retrying')).toBe(true);
    expect(r.logs.some((l) => l.msg === 'job attempt failed; will retry' && l.id === running.body.id)).toBe(true);
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    expect(metrics).toMatch(/deciserve_runner_s3_requests_total\{op="[a-z_]+",outcome="retryable_error"\} [1-9]/);
    expect(metrics).toMatch(/deciserve_runner_jobs_total\{type="completion",outcome="retried"\} [1-9]/);
    await stop(r);
  }, 120_000);

  it('dead-letters a job whose attempts all fail, and reports it failed', async () => {
    const tag = runTag('s3-dead');
    const r = await runner(
      tag,
      { S3_RETRY_FOR_MS: '400', RUNNER_JOB_ATTEMPTS: '2' },
      { ...s3, S3_ENDPOINT: proxy.url },
    );
    const client = new JobClient(r.url);
    const { body } = await client.submit({ ...job(0), prompt: 'word '.repeat(1500) });
    proxy.failFor(2500); // longer than 2 attempts × 0.4 s + backoff
    const dead = new Queue(`${tag}-dead`, { connection: { url: redis.url } });
    try {
      const entry = await waitFor('dead-letter entry', () => dead.getJob(body.id), 30_000);
      expect(entry.data).toMatchObject({ id: body.id, attempts: 2, error: { code: 'storage_unavailable' } });
    } finally {
      await dead.close();
    }
    const view = await client.waitDone(body.id, 30_000);
    expect(view).toMatchObject({ status: 'failed', error: { code: 'storage_unavailable' } });
    expect(r.logs.some((l) => l.msg === 'job dead-lettered' && l.id === body.id)).toBe(true);
    const metrics = await (await fetch(`${r.url}/metrics`)).text();
    expect(metrics).toMatch(/deciserve_runner_jobs_total\{type="completion",outcome="dead_lettered"\} 1/);
    await stop(r);
  }, 60_000);
});
