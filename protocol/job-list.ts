// GET /jobs (runner) and GET /v1/jobs (edge): a tenant's jobs, newest first, as an OpenAI-style list with cursor
// pagination. One query schema for both sides, so the edge refuses exactly what the runner would.
import { z } from 'zod';
import type { JobStatus, JobView } from './job-view.ts';

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const satisfies JobStatus[];
export const JOB_LIST_DEFAULT_LIMIT = 20;
export const JOB_LIST_MAX_LIMIT = 100;

export const jobListQuerySchema = z.strictObject({
  limit: z
    .string()
    .regex(/^[0-9]{1,3}$/, `limit must be an integer from 1 to ${JOB_LIST_MAX_LIMIT}`)
    .transform(Number)
    .pipe(z.number().int().min(1).max(JOB_LIST_MAX_LIMIT))
    .optional()
    .describe(`How many jobs to return, 1-${JOB_LIST_MAX_LIMIT} [${JOB_LIST_DEFAULT_LIMIT}].`),
  after: z
    .string()
    .regex(/^job_[a-z0-9]{26}$/, 'after must be a job id (job_ and 26 characters of a-z 0-9)')
    .optional()
    .describe("A cursor: the previous page's last_id. The page starts with the job listed after it."),
  status: z.enum(JOB_STATUSES).optional().describe('Only jobs in this status.'),
});

export type JobListQuery = z.output<typeof jobListQuerySchema>;

export interface JobList<T = JobView> {
  object: 'list';
  data: T[];
  /** The first job of `data`, or null for an empty page. */
  first_id: string | null;
  /**
   * Where the next page starts (pass it as `after`): the last job of `data`. With a `status` filter, a page that
   * stopped at the scan cap ends at the last job it looked at, which may not be in `data`.
   */
  last_id: string | null;
  has_more: boolean;
}

/** The query as the runner reads it: one value per name (a repeated name is refused like an unknown value). */
export function queryRecord(url: string, omit: string[] = []): Record<string, string | string[]> {
  const record: Record<string, string | string[]> = {};
  for (const [name, value] of new URL(url).searchParams) {
    if (omit.includes(name)) continue;
    const seen = record[name];
    record[name] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  return record;
}

/** The runner path for a list query (the tenant rides in the signed query string, like every other job call). */
export function jobListPath(tenant: string | undefined, query: JobListQuery): string {
  const params = new URLSearchParams();
  if (tenant !== undefined) params.set('tenant', tenant);
  if (query.limit !== undefined) params.set('limit', String(query.limit));
  if (query.after !== undefined) params.set('after', query.after);
  if (query.status !== undefined) params.set('status', query.status);
  const search = params.toString();
  return search ? `/jobs?${search}` : '/jobs';
}
