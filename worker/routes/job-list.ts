// GET /v1/jobs: the calling key's jobs, newest first, as an OpenAI-style list (object "list", data, first_id,
// last_id, has_more; cursor `after`, `limit`, optional `status`). The runner answers from its per-tenant index
// (runner/store/job-index.ts) for the tenant this key is, so another key's jobs never appear.
import { createRoute, z } from '@hono/zod-openapi';
import type { EdgeApp, RouteDeps } from '../deps.ts';
import { passThrough, publicJob, tenantOf } from '../job-flow.ts';
import { type JobList, jobListPath, jobListQuerySchema } from '../../protocol/job-list.ts';
import type { RunnerJobView } from '../runner-client.ts';
import { Job } from '../schemas.ts';
import { errorResponses, markRanOn, security } from './common.ts';
import { runnerOf } from './jobs.ts';

const JobListPage = z
  .object({
    object: z.literal('list'),
    data: z.array(Job),
    first_id: z.string().nullable(),
    last_id: z.string().nullable().openapi({ description: 'Pass it as `after` for the next page.' }),
    has_more: z.boolean(),
  })
  .openapi('JobList');

export function registerJobList(app: EdgeApp, deps: RouteDeps): void {
  const list = createRoute({
    method: 'get',
    path: '/v1/jobs',
    tags: ['jobs'],
    summary: "This API key's jobs, newest first",
    description:
      "Cursor pagination: `after` is the previous page's `last_id`. Succeeded jobs carry their presigned " +
      '`result_url`. Jobs of other keys never appear; an `after` that is not one of your jobs is a 400.',
    security,
    request: { query: jobListQuerySchema },
    responses: {
      200: { description: 'A page of jobs', content: { 'application/json': { schema: JobListPage } } },
      ...errorResponses,
    },
  });
  app.openapi(list, async (c) => {
    const runner = runnerOf(deps);
    const answered = await runner.answer(await runner.request('GET', jobListPath(tenantOf(c), c.req.valid('query'))));
    markRanOn(c, 'runner');
    if (!answered.ok) return passThrough(answered.response) as never;
    const page = answered.view as unknown as JobList<RunnerJobView>;
    return c.json({ ...page, data: page.data.map((view) => publicJob(c, view)) }, 200);
  });
}
