// runner/store/job-index.ts on a real Redis: pages newest first (ties by id), cursors, idempotent adds, and the
// status filter's scan cap (a page that looked at SCAN_CAP ids stops there and says where to go on). Job views come
// from a table here: the index logic, not S3, is under test (test/abuse/job-list.test.ts runs the whole path).
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobView } from '../../protocol/job-view.ts';
import { JobIndex, SCAN_CAP, UnknownCursorError, listJobs } from '../../runner/store/job-index.ts';
import { startRedis, type RedisHandle } from './harness.ts';

let redis: RedisHandle;
let client: Redis;
let index: JobIndex;
const id = (n: number) => `job_${String(n).padStart(26, '0')}`;
const views = new Map<string, JobView>();

beforeAll(async () => {
  redis = await startRedis('job-index');
  client = new Redis(redis.url);
  index = new JobIndex(client, 'idx-test');
  // 1,100 jobs of tenant "a", one a millisecond, every 100th failed; 3 of tenant "b" created in the same millisecond.
  for (let n = 0; n < 1100; n++) {
    await index.add({ id: id(n), created_at: 1_000 + n, tenant: 'a' });
    views.set(id(n), { id: id(n), object: 'job', status: n % 100 === 0 ? 'failed' : 'succeeded' });
  }
  for (const n of [5000, 5001, 5002]) {
    await index.add({ id: id(n), created_at: 9_999, tenant: 'b' });
    views.set(id(n), { id: id(n), object: 'job', status: 'queued' });
  }
}, 120_000);

afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

const view = async (jobId: string) => views.get(jobId) ?? null;

describe('JobIndex', () => {
  it('pages newest first; equal times are ordered by id; a tenant sees only its set, the operator all', async () => {
    expect(await index.page('a', undefined, 3)).toEqual([id(1099), id(1098), id(1097)]);
    expect(await index.page('a', id(1097), 2)).toEqual([id(1096), id(1095)]);
    expect(await index.page('b', undefined, 10)).toEqual([id(5002), id(5001), id(5000)]);
    expect(await index.page(undefined, undefined, 2)).toEqual([id(5002), id(5001)]);
    expect(await index.page('a', id(0), 5)).toEqual([]);
    await expect(index.page('b', id(1), 5)).rejects.toBeInstanceOf(UnknownCursorError); // a's job is no cursor for b
    await expect(index.page('a', id(7777), 5)).rejects.toBeInstanceOf(UnknownCursorError);
  });

  it('adds are idempotent: a re-add keeps the first time', async () => {
    await index.add({ id: id(5000), created_at: 1, tenant: 'b' });
    expect(await index.page('b', undefined, 10)).toEqual([id(5002), id(5001), id(5000)]);
    expect(await client.zscore('idx-test:index:tenant:b', id(5000))).toBe('9999');
  });
});

describe('listJobs', () => {
  it('limit + has_more + last_id walk the whole set without gaps or repeats', async () => {
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await listJobs(index, 'a', { limit: 100, after }, view);
      seen.push(...page.data.map((j) => j.id));
      if (!page.has_more) break;
      after = page.last_id!;
    }
    expect(seen).toEqual(Array.from({ length: 1100 }, (_, i) => id(1099 - i)));
  });

  it('with a status filter, fills the page from further down', async () => {
    const page = await listJobs(index, 'a', { limit: 3, status: 'failed' }, view);
    expect(page).toMatchObject({ first_id: id(1000), last_id: id(800), has_more: true });
    expect(page.data.map((j) => j.id)).toEqual([id(1000), id(900), id(800)]);
    const rest = await listJobs(index, 'a', { limit: 100, status: 'failed', after: page.last_id! }, view);
    expect([rest.data.map((j) => j.id), rest.has_more]).toEqual([
      [id(700), id(600), id(500), id(400), id(300), id(200), id(100), id(0)],
      false,
    ]);
  });

  it(`stops after ${SCAN_CAP} ids when the filter matches nothing, and the next page goes on from there`, async () => {
    const first = await listJobs(index, 'a', { limit: 10, status: 'queued' }, view);
    expect(first).toEqual({ object: 'list', data: [], first_id: null, last_id: id(1100 - SCAN_CAP), has_more: true });
    const second = await listJobs(index, 'a', { limit: 10, status: 'queued', after: first.last_id! }, view);
    expect(second).toEqual({ object: 'list', data: [], first_id: null, last_id: null, has_more: false });
  });
});
