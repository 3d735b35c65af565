// Which jobs a tenant has, newest first, for GET /jobs: a Redis sorted set per tenant (score created_at, member the
// job id) and one of every job (for the operator), written at intake before the job is enqueued. A page is one
// atomic rank lookup + range (O(log N + page)). Redis keeps it across restarts (AOF); the reconciler re-adds any job
// S3 has and the index lacks (a Redis that lost data, an intake that stored the input but could not reach Redis,
// jobs accepted before the index existed), so the list converges on S3, the source of truth.
import type { Redis } from 'ioredis';
import { JOB_LIST_DEFAULT_LIMIT, type JobList, type JobListQuery } from '../../protocol/job-list.ts';
import type { JobView } from '../../protocol/job-view.ts';
import type { StoredJob } from './jobs.ts';

/** The ids after `after` (all from the newest when empty), newest first; false when `after` is not in the set. */
const PAGE_SCRIPT = `
local start = 0
if ARGV[1] ~= '' then
  local rank = redis.call('ZREVRANK', KEYS[1], ARGV[1])
  if not rank then return false end
  start = rank + 1
end
return redis.call('ZREVRANGE', KEYS[1], start, start + tonumber(ARGV[2]) - 1)`;

/** With a status filter, ids are read this many at a time, and at most SCAN_CAP per request (a bounded request). */
const FILTER_BATCH = 50;
export const SCAN_CAP = 1000;

export class UnknownCursorError extends Error {}

export class JobIndex {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private key(tenant: string | undefined): string {
    return tenant === undefined ? `${this.prefix}:index:all` : `${this.prefix}:index:tenant:${tenant}`;
  }

  /** Idempotent (NX: a resubmission or a re-add keeps the first score). */
  async add(job: Pick<StoredJob, 'id' | 'created_at' | 'tenant'>): Promise<void> {
    const multi = this.redis.multi().zadd(this.key(undefined), 'NX', job.created_at, job.id);
    if (job.tenant !== undefined) multi.zadd(this.key(job.tenant), 'NX', job.created_at, job.id);
    const results = await multi.exec();
    const failed = results?.find(([err]) => err);
    if (!results || failed) throw failed?.[0] ?? new Error('job index write aborted');
  }

  /** Up to `count` ids after `after`, newest first; UnknownCursorError when `after` is not this tenant's job. */
  async page(tenant: string | undefined, after: string | undefined, count: number): Promise<string[]> {
    const ids = (await this.redis.eval(PAGE_SCRIPT, 1, this.key(tenant), after ?? '', count)) as string[] | null;
    if (ids === null) throw new UnknownCursorError(`${after} is not a job of this tenant`);
    return ids;
  }

  /**
   * Adds the jobs of `ids` (the inputs S3 holds) that the index lacks. Reads only the inputs it must (their tenant
   * and created_at), so a reconcile of an indexed store costs one ZMSCORE per 500 ids.
   */
  async addMissing(
    ids: Iterable<string>,
    store: { getInput(id: string): Promise<StoredJob | null> },
  ): Promise<string[]> {
    const all = [...ids];
    const added: string[] = [];
    for (let i = 0; i < all.length; i += 500) {
      const batch = all.slice(i, i + 500);
      const scores = await this.redis.zmscore(this.key(undefined), ...batch);
      for (const [j, id] of batch.entries()) {
        if (scores[j] !== null) continue;
        const input = await store.getInput(id);
        if (!input) continue;
        await this.add(input);
        added.push(id);
      }
    }
    return added;
  }
}

/**
 * One page of a tenant's jobs, newest first. `view` gives a job's status as GET /jobs/{id} would (null: not this
 * tenant's or gone). Without a filter it reads limit + 1 ids (the extra one only says whether there is more); with
 * one it reads in batches until the page is full, the ids run out, or SCAN_CAP ids were looked at.
 */
export async function listJobs(
  index: JobIndex,
  tenant: string | undefined,
  query: JobListQuery,
  view: (id: string) => Promise<JobView | null>,
): Promise<JobList> {
  const limit = query.limit ?? JOB_LIST_DEFAULT_LIMIT;
  const found: JobView[] = [];
  let cursor = query.after;
  let scanned = 0;
  let hasMore = false;
  for (;;) {
    const want = limit + 1 - found.length;
    const size = query.status ? Math.max(want, FILTER_BATCH) : want;
    const ids = await index.page(tenant, cursor, size);
    const views = await Promise.all(ids.map(view));
    for (const v of views) if (v && (!query.status || v.status === query.status)) found.push(v);
    scanned += ids.length;
    if (found.length > limit) {
      hasMore = true;
      break;
    }
    if (ids.length < size) break; // the index has nothing older
    cursor = ids.at(-1);
    if (scanned >= SCAN_CAP) {
      hasMore = true;
      break;
    }
  }
  const data = found.slice(0, limit);
  // Past the scan cap the next page starts where this one stopped looking, which may be a job not in `data`.
  const lastId =
    found.length > limit ? (data.at(-1)?.id ?? null) : hasMore ? (cursor ?? null) : (data.at(-1)?.id ?? null);
  return { object: 'list', data, first_id: data[0]?.id ?? null, last_id: lastId, has_more: hasMore };
}
