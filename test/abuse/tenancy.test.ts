// Jobs belong to the API key that created them (worker/job-flow.ts tenantOf → the runner's signed ?tenant=): status,
// result URL and cancel answer 404 to any other key, through the edge on Node against the real runner, radosgw and
// Redis; and at the runner's intake, a tenant sees only its own jobs while the operator (no tenant) sees all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEdge } from '../../worker/node-server.ts';
import {
  JobClient,
  SECRET,
  ensureRadosgw,
  runTag,
  runnerEnv,
  spawnRunner,
  startRedis,
  waitFor,
  type RedisHandle,
  type RunnerProcess,
} from '../runner/harness.ts';
import { EDGE_KEY, OTHER_KEY, expectError, post, startEdge, tinyEdgeModel } from '../edge/helpers.ts';

let redis: RedisHandle;
let runner: RunnerProcess;
let edge: RunningEdge;
const model = 'tiny';

beforeAll(async () => {
  const [s3, redisHandle, models] = await Promise.all([
    ensureRadosgw(),
    startRedis('tenancy'),
    tinyEdgeModel('tenancy'),
  ]);
  redis = redisHandle;
  const tag = runTag('tenancy');
  runner = await spawnRunner(
    runnerEnv(
      { modelDir: models.checkpoint, redisUrl: redis.url, s3, bucket: tag, queue: tag },
      { RUNNER_MODEL_ID: model },
    ),
  );
  edge = await startEdge(models.edgeModel, {
    MODEL_ID: model,
    RUNNER_URL: runner.url,
    RUNNER_HMAC_SECRET: SECRET,
    JOB_WAIT_MS: '30000',
    JOB_POLL_MS: '50',
  });
}, 240_000);

afterAll(async () => {
  await edge?.close();
  runner?.kill('SIGTERM');
  await runner?.exited;
  await redis?.stop();
});

const as = (key: string) => ({ authorization: `Bearer ${key}` });
const call = (method: string, path: string, key: string) => fetch(edge.url + path, { method, headers: as(key) });

async function finishedJobOf(key: string): Promise<{ id: string; result_url: string }> {
  const created = (await (
    await post(edge, '/v1/jobs', { type: 'completion', model, prompt: 'owned by one key', max_tokens: 2 }, as(key))
  ).json()) as { id: string };
  return waitFor('job done', async () => {
    const view = (await (await call('GET', `/v1/jobs/${created.id}`, key)).json()) as {
      id: string;
      status: string;
      result_url: string;
    };
    return view.status === 'succeeded' ? view : null;
  });
}

describe('through the edge', () => {
  it('the owner reads status and result; another key gets 404 for status and cancel, and never the result URL', async () => {
    const job = await finishedJobOf(EDGE_KEY);
    expect((await fetch(job.result_url)).status).toBe(200);

    const status = await call('GET', `/v1/jobs/${job.id}`, OTHER_KEY);
    const text = await status.clone().text();
    await expectError(status, 404, 'job_not_found');
    expect(text).not.toContain('result_url');
    expect(text).not.toContain('X-Amz-Signature');
    await expectError(await call('DELETE', `/v1/jobs/${job.id}`, OTHER_KEY), 404, 'job_not_found');
    // The 404 is the same as for a job that never existed: nothing to learn from probing ids.
    await expectError(await call('GET', `/v1/jobs/job_${'0'.repeat(26)}`, OTHER_KEY), 404, 'job_not_found');

    // Still the owner's: the other key's cancel did nothing (a finished job cannot be cancelled: 409).
    await expectError(await call('DELETE', `/v1/jobs/${job.id}`, EDGE_KEY), 409, 'job_not_cancellable');
    expect((await call('GET', `/v1/jobs/${job.id}`, EDGE_KEY)).status).toBe(200);
  });

  it('the same holds the other way round', async () => {
    const job = await finishedJobOf(OTHER_KEY);
    await expectError(await call('GET', `/v1/jobs/${job.id}`, EDGE_KEY), 404, 'job_not_found');
    await expectError(await call('DELETE', `/v1/jobs/${job.id}`, EDGE_KEY), 404, 'job_not_found');
    expect((await call('GET', `/v1/jobs/${job.id}`, OTHER_KEY)).status).toBe(200);
  });
});

describe('at the runner intake (signed ?tenant=)', () => {
  it('a tenant sees only its jobs; the operator (no tenant) sees every job; a malformed tenant is 400', async () => {
    const client = new JobClient(runner.url);
    const submitted = await client.request(
      'POST',
      '/jobs?tenant=alpha',
      JSON.stringify({ type: 'completion', model, prompt: 'alpha job', max_tokens: 1 }),
    );
    const { id } = (await submitted.json()) as { id: string };
    expect(submitted.status).toBe(202);
    await waitFor(
      'alpha done',
      async () =>
        ((await (await client.request('GET', `/jobs/${id}?tenant=alpha`)).json()) as { status: string }).status ===
        'succeeded',
    );

    const other = await client.request('GET', `/jobs/${id}?tenant=beta`);
    expect([other.status, ((await other.json()) as any).error.code]).toEqual([404, 'job_not_found']);
    const cancel = await client.request('DELETE', `/jobs/${id}?tenant=beta`);
    expect(cancel.status).toBe(404);
    const operator = (await (await client.request('GET', `/jobs/${id}`)).json()) as {
      status: string;
      result_url?: string;
    };
    expect(operator).toMatchObject({ status: 'succeeded', result_url: expect.stringMatching(/^http/) });
    const bad = await client.request('GET', `/jobs/${id}?tenant=${encodeURIComponent('a b')}`);
    expect([bad.status, ((await bad.json()) as any).error.code]).toEqual([400, 'invalid_tenant']);
  });

  it("reusing an Idempotency-Key under another tenant is a conflict, not a view of the first tenant's job", async () => {
    const client = new JobClient(runner.url);
    const body = JSON.stringify({ type: 'completion', model, prompt: 'keyed job', max_tokens: 1 });
    const key = `tenancy-${Date.now()}`;
    expect((await client.request('POST', '/jobs?tenant=alpha', body, { 'idempotency-key': key })).status).toBe(202);
    const again = await client.request('POST', '/jobs?tenant=beta', body, { 'idempotency-key': key });
    expect([again.status, ((await again.json()) as any).error.code]).toEqual([409, 'idempotency_key_reused']);
  });
});
