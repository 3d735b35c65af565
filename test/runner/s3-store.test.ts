// runner/store/s3-store.ts in-process against the real radosgw: write-once inputs and results (first writer wins), ended
// records that may be rewritten, the prefix layout and listing, presigned reads, byte and request metrics, and the
// retry policy (transient errors retried until the deadline, others thrown at once).
import { HeadObjectCommand, PutObjectCommand, S3ServiceException } from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { configFromEnv } from '../../runner/config.ts';
import type { EndedJob, StoredJob } from '../../runner/store/jobs.ts';
import { createLogger } from '../../runner/logger.ts';
import { createMetrics } from '../../runner/metrics.ts';
import type { JobResult } from '../../protocol/results.ts';
import { isRetryableS3Error, JobStore, S3UnavailableError } from '../../runner/store/s3-store.ts';
import { ensureRadosgw, runTag, SECRET, type S3Env } from './harness.ts';

let s3: S3Env;
const log = createLogger('silent');
const storeFor = (env: Record<string, string>, metrics = createMetrics()) => {
  const config = configFromEnv({
    RUNNER_HMAC_SECRET: SECRET,
    RUNNER_ROLES: 'intake',
    RUNNER_MODEL_DIR: '/m',
    ...s3,
    ...env,
  });
  return { store: JobStore.fromConfig(config, log, metrics), metrics };
};
const job = (id: string, prompt: string): StoredJob => ({
  id,
  created_at: 1,
  request: { type: 'completion', model: 'm', prompt } as StoredJob['request'],
  request_sha256: prompt,
  prompt_tokens: 1,
  cost_tokens: 2,
});
const counter = async (
  metrics: ReturnType<typeof createMetrics>,
  name: 's3Requests' | 's3Bytes',
  labels: Record<string, string>,
) =>
  (await metrics[name].get()).values.find((v) =>
    Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l),
  )?.value ?? 0;

beforeAll(async () => {
  s3 = await ensureRadosgw();
}, 300_000);

describe('JobStore on radosgw', () => {
  it('inputs and results are written once: the second write reports "exists" and the first stays', async () => {
    const bucket = runTag('store');
    const { store, metrics } = storeFor({ S3_BUCKET: bucket, S3_PREFIX: 'p/', RUNNER_PRESIGN_TTL_S: '1234' });
    await store.ensureBucket();
    await store.ensureBucket(); // idempotent
    await store.ping();
    expect(store.key('results', 'job_a')).toBe('p/results/job_a.json');

    expect(await store.getInput('job_a')).toBeNull();
    expect(await store.putInputOnce(job('job_a', 'first'))).toBe('created');
    expect(await store.putInputOnce(job('job_a', 'second'))).toBe('exists');
    expect((await store.getInput('job_a'))!.request_sha256).toBe('first');

    expect(await store.hasResult('job_a')).toBe(false);
    expect(await store.getResult('job_a')).toBeNull();
    const first = { id: 'job_a', object: 'text_completion', n: 1 } as unknown as JobResult;
    expect(await store.putResultOnce('job_a', first)).toBe('created');
    expect(await store.putResultOnce('job_a', { ...first, n: 2 } as unknown as JobResult)).toBe('exists');
    expect(await store.hasResult('job_a')).toBe(true);
    expect(await store.getResult('job_a')).toEqual(first);
    const presigned = await store.presignResult('job_a');
    expect(presigned).toContain('p/results/job_a.json');
    expect(new URL(presigned).searchParams.get('X-Amz-Expires')).toBe('1234');
    const head = await store.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'p/results/job_a.json' }));
    expect(head.ContentType).toBe('application/json');
    expect(await (await fetch(presigned)).json()).toEqual(first);

    const ended: EndedJob = {
      id: 'job_b',
      status: 'cancelled',
      error: { message: 'x', code: 'cancelled' },
      ended_at: 1,
      attempts: 0,
    };
    await store.putEnded(ended);
    await store.putEnded({ ...ended, status: 'failed', attempts: 3 }); // ended records may be rewritten
    expect(await store.getEnded('job_b')).toMatchObject({ status: 'failed', attempts: 3 });
    expect(await store.getEnded('job_a')).toBeNull();

    // Listing: per area, under the prefix, .json keys only.
    await store.putInputOnce(job('job_c', 'c'));
    await store.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'p/inputs/notes.txt', Body: 'x' }));
    await store.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'other/inputs/job_z.json', Body: '{}' }));
    expect([...(await store.listIds('inputs'))].sort()).toEqual(['job_a', 'job_c']);
    expect([...(await store.listIds('results'))]).toEqual(['job_a']);
    expect([...(await store.listIds('ended'))]).toEqual(['job_b']);

    const written =
      JSON.stringify(job('job_a', 'first')).length +
      JSON.stringify(first).length +
      JSON.stringify(job('job_c', 'c')).length;
    expect(await counter(metrics, 's3Bytes', { direction: 'out' })).toBe(written); // only the writes that stored something
    expect(await counter(metrics, 's3Bytes', { direction: 'in' })).toBe(
      JSON.stringify(job('job_a', 'first')).length +
        JSON.stringify(first).length +
        JSON.stringify({ ...ended, status: 'failed', attempts: 3 }).length,
    );
    expect(await counter(metrics, 's3Requests', { op: 'put_results', outcome: 'ok' })).toBe(2);
    expect(await counter(metrics, 's3Requests', { op: 'get_inputs', outcome: 'ok' })).toBe(2);
    for (const op of [
      'create_bucket',
      'head_results',
      'put_ended',
      'get_ended',
      'list_inputs',
      'list_results',
      'put_inputs',
    ] as const) {
      expect(await counter(metrics, 's3Requests', { op, outcome: 'ok' }), op).toBeGreaterThan(0);
    }
  });

  it('works without metrics', async () => {
    const config = configFromEnv({
      RUNNER_HMAC_SECRET: SECRET,
      RUNNER_ROLES: 'intake',
      RUNNER_MODEL_DIR: '/m',
      ...s3,
      S3_BUCKET: runTag('nometrics'),
    });
    const store = JobStore.fromConfig(config, log);
    await store.ensureBucket();
    expect(await store.putInputOnce(job('job_a', 'x'))).toBe('created');
    expect((await store.getInput('job_a'))!.request_sha256).toBe('x');
    const missing = JobStore.fromConfig(
      configFromEnv({
        RUNNER_HMAC_SECRET: SECRET,
        RUNNER_ROLES: 'intake',
        RUNNER_MODEL_DIR: '/m',
        ...s3,
        S3_BUCKET: 'x',
        S3_ENDPOINT: 'http://127.0.0.1:9',
        S3_RETRY_FOR_MS: '300',
      }),
      log,
    );
    await expect(missing.getInput('job_a')).rejects.toThrow(S3UnavailableError);
  });

  it('ping fails for a bucket that does not exist', async () => {
    const { store } = storeFor({ S3_BUCKET: runTag('absent') });
    await expect(store.ping()).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
  });

  it('a store nobody answers retries with backoff until S3_RETRY_FOR_MS, then throws S3UnavailableError', async () => {
    const { store, metrics } = storeFor({ S3_BUCKET: 'x', S3_ENDPOINT: 'http://127.0.0.1:9', S3_RETRY_FOR_MS: '1500' });
    const t0 = Date.now();
    const err = await store.getInput('job_a').catch((e: unknown) => e as Error);
    // It keeps trying for the whole budget, with a last attempt at its end, and not much past it.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    expect(Date.now() - t0).toBeLessThan(1500 + 2500);
    expect(err).toBeInstanceOf(S3UnavailableError);
    expect((err as Error).name).toBe('S3UnavailableError');
    // no HTTP status: the message ends with the error's name, no "undefined" and no trailing space
    expect((err as Error).message).toMatch(/^S3 get_inputs failed after \d+ attempts: [A-Za-z]+$/);
    const attempts = Number(/^S3 get_inputs failed after (\d+) attempts: /.exec((err as Error).message)?.[1]);
    // Backoff 0.1-0.2 s doubling, the last wait cut to the deadline: 1.5 s holds 4 to 6 attempts, never a tight loop.
    expect(attempts).toBeGreaterThanOrEqual(4);
    expect(attempts).toBeLessThanOrEqual(6);
    expect(await counter(metrics, 's3Requests', { op: 'get_inputs', outcome: 'retryable_error' })).toBe(attempts);
  });

  it('an error S3 will repeat (wrong credentials: 403) is thrown at once, unretried', async () => {
    const { store, metrics } = storeFor({
      S3_BUCKET: runTag('denied'),
      S3_SECRET_ACCESS_KEY: 'wrong-secret-key-0123456789',
      S3_RETRY_FOR_MS: '20000',
    });
    const err = await store.putInputOnce(job('job_a', 'x')).catch((e: unknown) => e as Error);
    expect(err).not.toBeInstanceOf(S3UnavailableError);
    expect((err as unknown as { $metadata: { httpStatusCode: number } }).$metadata.httpStatusCode).toBe(403);
    expect(await counter(metrics, 's3Requests', { op: 'put_inputs', outcome: '403' })).toBe(1);
    // every call surfaces it: a denied HEAD is not "no result", a denied bucket create is not "already there"
    await expect(store.hasResult('job_a')).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
    await expect(store.getResult('job_a')).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
    await expect(store.ensureBucket()).rejects.toMatchObject({ $metadata: { httpStatusCode: 403 } });
  });
});

describe('isRetryableS3Error', () => {
  const exception = (name: string, status: number) =>
    new S3ServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: status } });
  it('retries 5xx, 429, no answer, and throttling names on any status; not other 4xx', () => {
    expect(isRetryableS3Error({ $metadata: { httpStatusCode: 500 } })).toBe(true);
    expect(isRetryableS3Error({ $metadata: { httpStatusCode: 499 } })).toBe(false);
    expect(isRetryableS3Error({ $metadata: { httpStatusCode: 429 } })).toBe(true);
    expect(isRetryableS3Error({ $metadata: { httpStatusCode: 503 } })).toBe(true);
    expect(isRetryableS3Error(undefined)).toBe(true);
    expect(isRetryableS3Error({ $metadata: {} })).toBe(true);
    expect(isRetryableS3Error(null)).toBe(true);
    for (const name of ['SlowDown', 'ThrottlingException', 'RequestTimeout'])
      expect(isRetryableS3Error(exception(name, 400)), name).toBe(true);
    expect(isRetryableS3Error(exception('AccessDenied', 403))).toBe(false);
    expect(isRetryableS3Error({ name: 'SlowDown', $metadata: { httpStatusCode: 400 } })).toBe(false); // not an S3 exception
  });
});
