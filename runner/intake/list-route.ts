// GET /jobs: the calling tenant's jobs, newest first (protocol/job-list.ts), from the Redis index
// (runner/store/job-index.ts); each job's status read the way GET /jobs/{id} reads it, so a list never shows what
// the tenant could not open. Without ?tenant= the caller is the operator and sees every job.
import type { Context } from 'hono';
import { ApiError, badRequest, unavailable } from '../../protocol/api-errors.ts';
import { jobListQuerySchema, queryRecord } from '../../protocol/job-list.ts';
import { type JobIndex, listJobs, UnknownCursorError } from '../store/job-index.ts';
import type { JobView } from '../../protocol/job-view.ts';

export interface ListDeps {
  index: JobIndex;
  /** A job's view as GET /jobs/{id} gives it to `tenant` (null: unknown, or another tenant's). */
  view: (id: string, tenant: string | undefined) => Promise<JobView | null>;
}

export function listJobsHandler(deps: ListDeps, tenantOf: (c: Context) => string | undefined) {
  return async (c: Context) => {
    const tenant = tenantOf(c);
    const parsed = jobListQuerySchema.safeParse(queryRecord(c.req.url, ['tenant']));
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const param = issue.path.length > 0 ? issue.path.join('.') : null;
      if (issue.code === 'unrecognized_keys')
        throw badRequest('unknown_parameter', `unknown query parameter(s): ${issue.keys.join(', ')}`, issue.keys[0]);
      const code = issue.code === 'too_big' ? 'value_too_large' : 'invalid_value'; // as the edge's zodError names it
      throw badRequest(code, `${param}: ${issue.message}`, param);
    }
    try {
      // Redis calls fail fast while it is away (the intake's client has no offline queue); S3 reads are bounded by
      // the intake's retry budget.
      const list = await listJobs(deps.index, tenant, parsed.data, (id) => deps.view(id, tenant));
      return c.json(list);
    } catch (err) {
      if (err instanceof UnknownCursorError)
        throw badRequest('invalid_value', `after: ${parsed.data.after} is not one of your jobs`, 'after');
      if (err instanceof ApiError) throw err; // from a job's view (storage_unavailable)
      throw unavailable('queue_unavailable', `the job index is unavailable (${(err as Error).message}); retry`);
    }
  };
}
