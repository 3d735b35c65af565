// GET /v1/jobs lists only the calling key's jobs (the runner's per-tenant Redis index, runner/store/job-index.ts),
// newest first, with cursor pagination and a status filter; invalid query parameters are OpenAI-shaped 400s. Real
// edge on Node, real runner, Redis and radosgw. The runner starts intake-only, so jobs stay queued until a worker
// process joins: one job is cancelled while queued, the rest succeed. Also: the index survives a runner restart and
// is rebuilt from S3 by the reconciler after Redis loses it.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEdge } from '../../worker/node-server.ts';
import { EDGE_KEY, OTHER_KEY, expectError, post, startEdge, tinyEdgeModel } from '../edge/helpers.ts';
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
  type S3Env,
} from '../runner/harness.ts';

const model = 'tiny';
let redis: RedisHandle;
let s3: S3Env;
let checkpoint: string;
let tag: string;
let intake: RunnerProcess;
let edge: RunningEdge;
const runners: RunnerProcess[] = [];

const env = (extra: Record<string, string>) =>
  runnerEnv(
    { modelDir: checkpoint, redisUrl: redis.url, s3, bucket: tag, queue: tag },
    { RUNNER_MODEL_ID: model, ...extra },
  );
async function startRunner(roles: string): Promise<RunnerProcess> {
  const runner = await spawnRunner(env({ RUNNER_ROLES: roles }));
  runners.push(runner);
  return runner;
}
async function stop(runner: RunnerProcess): Promise<void> {
  runner.kill('SIGTERM');
  await runner.exited;
}

beforeAll(async () => {
  const [s3Env, redisHandle, models] = await Promise.all([
    ensureRadosgw(),
    startRedis('job-list'),
    tinyEdgeModel('job-list'),
  ]);
  [s3, redis, checkpoint, tag] = [s3Env, redisHandle, models.checkpoint, runTag('job-list')];
  intake = await startRunner('intake');
  edge = await startEdge(models.edgeModel, {
    MODEL_ID: model,
    RUNNER_URL: intake.url,
    RUNNER_HMAC_SECRET: SECRET,
    JOB_WAIT_MS: '30000',
    JOB_POLL_MS: '50',
    RATE_LIMIT_PER_MINUTE: '0',
  });
}, 240_000);

afterAll(async () => {
  await edge?.close();
  for (const runner of runners) await stop(runner);
  await redis?.stop();
});

type View = { id: string; object: string; status: string; created_at: number; result_url?: string; url: string };
type List = { object: string; data: View[]; first_id: string | null; last_id: string | null; has_more: boolean };
const as = (key: string) => ({ authorization: `Bearer ${key}` });
const call = (method: string, path: string, key: string) => fetch(edge.url + path, { method, headers: as(key) });
async function list(key: string, query = ''): Promise<List> {
  const response = await call('GET', `/v1/jobs${query}`, key);
  const body = (await response.json()) as List;
  expect(response.status, JSON.stringify(body)).toBe(200);
  return body;
}
async function submit(key: string, prompt: string): Promise<string> {
  const response = await post(edge, '/v1/jobs', { type: 'completion', model, prompt, max_tokens: 2 }, as(key));
  expect(response.status).toBe(202);
  return ((await response.json()) as { id: string }).id;
}

/** Jobs in the order they were submitted (oldest first); a job of `EDGE_KEY` cancelled while queued. */
const mine: string[] = [];
const theirs: string[] = [];
let cancelled = '';

describe('GET /v1/jobs', () => {
  it('lists each key its own jobs only, newest first: succeeded ones with a presigned URL, the cancelled one without', async () => {
    for (let i = 0; i < 5; i++) {
      mine.push(await submit(EDGE_KEY, `mine ${i}`));
      if (i < 2) theirs.push(await submit(OTHER_KEY, `theirs ${i}`));
    }
    cancelled = mine[1]!;
    expect((await call('DELETE', `/v1/jobs/${cancelled}`, EDGE_KEY)).status).toBe(200);
    const queued = await list(EDGE_KEY, '?status=queued');
    expect(queued.data.map((j) => j.id)).toEqual(mine.filter((id) => id !== cancelled).reverse());

    await startRunner('worker');
    const done = await waitFor(
      'every job ended',
      async () => {
        const page = await list(EDGE_KEY);
        return page.data.every((j) => j.status === 'succeeded' || j.status === 'cancelled') ? page : null;
      },
      60_000,
    );
    expect(done).toMatchObject({ object: 'list', has_more: false, first_id: mine.at(-1), last_id: mine[0] });
    expect(done.data.map((j) => j.id)).toEqual([...mine].reverse());
    const times = done.data.map((j) => j.created_at);
    expect(times).toEqual([...times].sort((a, b) => b - a));
    for (const job of done.data) {
      expect(job.object).toBe('job');
      expect(job.url).toBe(`${edge.url}/v1/jobs/${job.id}`);
      if (job.id === cancelled) {
        expect([job.status, job.result_url]).toEqual(['cancelled', undefined]);
        continue;
      }
      expect(job.status).toBe('succeeded');
      expect(job.result_url).toMatch(/X-Amz-Signature=/);
      expect((await fetch(job.result_url!)).status).toBe(200);
    }

    const other = await waitFor('their jobs done', async () => {
      const page = await list(OTHER_KEY);
      return page.data.every((j) => j.status === 'succeeded') ? page : null;
    });
    expect(other.data.map((j) => j.id)).toEqual([...theirs].reverse());
    const text = JSON.stringify(other);
    for (const id of mine) expect(text).not.toContain(id);
    // The owner's result URLs never reach the other key's view.
    for (const url of done.data.flatMap((j) => (j.result_url ? [j.result_url] : []))) expect(text).not.toContain(url);
  });

  it('pages with limit and after (the previous last_id) through exactly the jobs of the full list', async () => {
    const seen: string[] = [];
    let after = '';
    let pages = 0;
    for (;;) {
      const page = await list(EDGE_KEY, `?limit=2${after ? `&after=${after}` : ''}`);
      pages++;
      expect(page.data.length).toBeLessThanOrEqual(2);
      expect([page.first_id, page.last_id]).toEqual([page.data[0]?.id ?? null, page.data.at(-1)?.id ?? null]);
      seen.push(...page.data.map((j) => j.id));
      if (!page.has_more) break;
      after = page.last_id!;
    }
    expect([pages, seen]).toEqual([3, [...mine].reverse()]);
    // A cursor at the oldest job: an empty last page.
    expect(await list(EDGE_KEY, `?after=${mine[0]}`)).toEqual({
      object: 'list',
      data: [],
      first_id: null,
      last_id: null,
      has_more: false,
    });
    const one = await list(EDGE_KEY, '?limit=4');
    expect([one.data.length, one.has_more]).toEqual([4, true]);
  });

  it('filters by status, with pagination inside the filter', async () => {
    expect((await list(EDGE_KEY, '?status=cancelled')).data.map((j) => j.id)).toEqual([cancelled]);
    const succeeded = mine.filter((id) => id !== cancelled).reverse();
    expect((await list(EDGE_KEY, '?status=succeeded')).data.map((j) => j.id)).toEqual(succeeded);
    const first = await list(EDGE_KEY, '?status=succeeded&limit=3');
    expect([first.data.map((j) => j.id), first.has_more]).toEqual([succeeded.slice(0, 3), true]);
    const rest = await list(EDGE_KEY, `?status=succeeded&limit=3&after=${first.last_id}`);
    expect([rest.data.map((j) => j.id), rest.has_more]).toEqual([succeeded.slice(3), false]);
    expect((await list(EDGE_KEY, '?status=failed')).data).toEqual([]);
    expect((await list(OTHER_KEY, '?status=cancelled')).data).toEqual([]);
  });

  it("another key's job id as the cursor is the same 400 as an unknown id: nothing to learn from it", async () => {
    const theirs0 = await call('GET', `/v1/jobs?after=${theirs[0]}`, EDGE_KEY);
    const unknown = await call('GET', `/v1/jobs?after=job_${'0'.repeat(26)}`, EDGE_KEY);
    const [a, b] = [(await theirs0.clone().json()) as any, (await unknown.clone().json()) as any];
    await expectError(theirs0, 400, 'invalid_value');
    await expectError(unknown, 400, 'invalid_value');
    expect([a.error.param, b.error.param]).toEqual(['after', 'after']);
    expect(a.error.message.replace(theirs[0], 'ID')).toBe(b.error.message.replace(`job_${'0'.repeat(26)}`, 'ID'));
  });

  it('refuses invalid query parameters with OpenAI-shaped 400s before asking the runner', async () => {
    const cases: [string, string, string][] = [
      ['limit=0', 'invalid_value', 'limit'],
      ['limit=101', 'value_too_large', 'limit'],
      ['limit=abc', 'invalid_value', 'limit'],
      ['limit=-1', 'invalid_value', 'limit'],
      ['limit=1.5', 'invalid_value', 'limit'],
      ['limit=1&limit=2', 'invalid_value', 'limit'],
      ['status=done', 'invalid_value', 'status'],
      ['after=job_1', 'invalid_value', 'after'],
      ['after=', 'invalid_value', 'after'],
      ['order=asc', 'unknown_parameter', ''],
    ];
    for (const [query, code, param] of cases) {
      const response = await call('GET', `/v1/jobs?${query}`, EDGE_KEY);
      const body = (await response.clone().json()) as any;
      expect([query, response.headers.get('x-deciserve-ran-on')]).toEqual([query, 'edge']);
      await expectError(response, 400, code);
      expect(body.error.param).toBe(param || null);
    }
    await expectError(await fetch(`${edge.url}/v1/jobs`), 401, 'missing_api_key');
  });
});

describe('the OpenAPI document', () => {
  it('has GET /v1/jobs with limit, after and status in the query, answering a JobList of Jobs', async () => {
    const doc = (await (await call('GET', '/openapi.json', EDGE_KEY)).json()) as any;
    const op = doc.paths['/v1/jobs'].get;
    expect(op.parameters.map((p: any) => [p.name, p.in, p.required ?? false])).toEqual([
      ['limit', 'query', false],
      ['after', 'query', false],
      ['status', 'query', false],
    ]);
    expect(op.parameters[2].schema.enum).toEqual(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
    expect(op.responses['200'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/JobList' });
    expect(doc.components.schemas.JobList.properties.data.items).toEqual({ $ref: '#/components/schemas/Job' });
    expect(doc.paths['/v1/jobs'].post).toBeDefined(); // submitting is still there
  });
});

describe("the runner's index", () => {
  it('the operator (signed, no tenant) lists every tenant; a tenant query signed for one tenant lists only it', async () => {
    const client = new JobClient(intake.url);
    const all = (await (await client.request('GET', '/jobs?limit=100')).json()) as List;
    expect(new Set(all.data.map((j) => j.id))).toEqual(new Set([...mine, ...theirs]));
    const bad = await client.request('GET', '/jobs?limit=7x');
    expect([bad.status, ((await bad.json()) as any).error.code]).toEqual([400, 'invalid_value']);
    expect((await fetch(`${intake.url}/jobs`)).status).toBe(401); // unsigned
  });

  it('survives a restart of the intake, and the reconciler rebuilds it from S3 after Redis lost it', async () => {
    const before = await list(EDGE_KEY);
    const keys = (await redis.cli('KEYS', `${tag}:index:*`)).split('\n').filter(Boolean);
    expect(keys.length).toBe(3); // every job, and one set per tenant

    const restarted = await startRunner('intake');
    const client = new JobClient(restarted.url);
    const viaNew = (await (await client.request('GET', '/jobs?limit=100')).json()) as List;
    expect(viaNew.data.length).toBe(mine.length + theirs.length);

    await redis.cli('DEL', ...keys);
    expect((await list(EDGE_KEY)).data).toEqual([]);
    const worker = await startRunner('worker'); // reconciles at start (RUNNER_RECONCILE_INTERVAL_MS 0)
    await worker.waitForLog((l) => l.msg === 'reconciled queue with S3');
    const after = await list(EDGE_KEY);
    expect(after.data.map((j) => [j.id, j.status])).toEqual(before.data.map((j) => [j.id, j.status]));
    expect((await list(OTHER_KEY)).data.map((j) => j.id)).toEqual([...theirs].reverse());
  });
});

describe('the edge CPU budget per key, with a runner', () => {
  it('past RATE_LIMIT_EDGE_CPU_MS_PER_MINUTE the work goes to the runner (200, ran on the runner), not a 429', async () => {
    const { edgeModel } = await tinyEdgeModel('job-list-cpu');
    const budgeted = await startEdge(edgeModel, {
      MODEL_ID: model,
      RUNNER_URL: intake.url,
      RUNNER_HMAC_SECRET: SECRET,
      JOB_WAIT_MS: '60000',
      JOB_POLL_MS: '50',
      RATE_LIMIT_PER_MINUTE: '0',
      RATE_LIMIT_EDGE_CPU_MS_PER_MINUTE: '2500',
      MAX_NEW_TOKENS: '100',
      EDGE_DECODE_TOKENS_PER_S: '71', // fixed here, not the committed benchmark's rate
    });
    try {
      // max_tokens 100 at 71 tok/s is ~1.4 s of estimate.
      const ask = (maxTokens: number, key = EDGE_KEY) =>
        post(budgeted, '/v1/completions', { model, prompt: 'a short prompt', max_tokens: maxTokens }, as(key));
      const ranOn = (r: Response) => r.headers.get('x-deciserve-ran-on');
      const first = await ask(100);
      expect([first.status, ranOn(first)]).toEqual([200, 'edge']);

      const second = await ask(100); // 1.4 s + 1.4 s > 2.5 s: the edge budget is spent
      const body = (await second.json()) as any;
      expect([second.status, ranOn(second)], JSON.stringify(body)).toEqual([200, 'runner']);
      expect(body.deciserve).toMatchObject({ ran_on: 'runner', job_id: second.headers.get('x-deciserve-job-id') });
      expect(body.choices[0].text).toEqual(expect.any(String));
      expect(decodeURIComponent(second.headers.get('server-timing') ?? '')).toMatch(
        /runner: this API key's edge CPU budget \(2500 ms per minute\) is spent/,
      );
      // The runner's job is the key's own: it is in the key's list, and in no one else's.
      expect((await list(EDGE_KEY, '?limit=1')).data[0]!.id).toBe(body.deciserve.job_id);
      expect(JSON.stringify(await list(OTHER_KEY))).not.toContain(body.deciserve.job_id);

      // Work the rest of the budget covers still runs at the edge, and another key has a budget of its own.
      const cheap = await ask(1);
      expect([cheap.status, ranOn(cheap)]).toEqual([200, 'edge']);
      const other = await ask(100, OTHER_KEY);
      expect([other.status, ranOn(other)]).toEqual([200, 'edge']);
    } finally {
      await budgeted.close();
    }
  }, 120_000);
});
