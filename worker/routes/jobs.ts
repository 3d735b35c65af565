// Explicit long-document jobs, forwarded to the runner's signed intake: POST /v1/jobs (completion or score, with an
// optional signed webhook and Idempotency-Key), GET /v1/jobs/{id} (status, presigned S3 result URL), DELETE (cancel).
import { createRoute } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { AppEnv, EdgeApp, RouteDeps } from '../deps.ts';
import { ApiError } from '../http/errors.ts';
import { idempotencyKey, passThrough, publicJob, RETRY_AFTER_S, tenantOf } from '../job-flow.ts';
import type { RunnerAnswer, RunnerClient } from '../runner-client.ts';
import { Job, JobIdParam } from '../schemas.ts';
import { checkModel, conflict, errorResponses, markRanOn, security } from './common.ts';

const job = (description: string) => ({ description, content: { 'application/json': { schema: Job } } });

export function runnerOf(deps: RouteDeps): RunnerClient {
  if (!deps.runner)
    throw new ApiError(
      503,
      'server_error',
      'runner_not_configured',
      'this deployment has no batch runner (RUNNER_URL)',
    );
  return deps.runner;
}

function answer(c: Context<AppEnv>, result: RunnerAnswer): Response {
  markRanOn(c, 'runner');
  if (!result.ok) return passThrough(result.response);
  return c.json(publicJob(c, result.view), result.status as 200 | 202);
}

export function registerJobs(app: EdgeApp, deps: RouteDeps): void {
  const tags = ['jobs'];
  const submit = createRoute({
    method: 'post',
    path: '/v1/jobs',
    tags,
    summary: 'Submit a long-document job (completion or score)',
    description:
      'Runs on the batch runner (DeciMamba above the training length). The same Idempotency-Key with the same ' +
      'request returns the same job (200); with a different request, 409. `webhook.url` receives a signed ' +
      '`job.succeeded`/`job.failed` event.',
    security,
    request: { body: { content: { 'application/json': { schema: deps.schemas.jobRequest } }, required: true } },
    responses: {
      200: job('A job with this Idempotency-Key already exists'),
      202: job('Accepted'),
      409: conflict,
      ...errorResponses,
    },
  });
  app.openapi(submit, async (c) => {
    const body = c.req.valid('json');
    checkModel(deps, body.model);
    const submitted = await runnerOf(deps).submit(body, idempotencyKey(c), tenantOf(c), c.get('requestId'));
    if (submitted.ok) {
      // The same headers as a completion answered 202 (job-flow.ts): where to poll, and when.
      c.header('Location', publicJob(c, submitted.view).url);
      c.header('x-deciserve-job-id', submitted.view.id);
      if (submitted.view.status === 'queued' || submitted.view.status === 'running')
        c.header('Retry-After', String(RETRY_AFTER_S));
    }
    return answer(c, submitted) as never;
  });

  const get = createRoute({
    method: 'get',
    path: '/v1/jobs/{id}',
    tags,
    summary: "A job's status, with a presigned result URL once it succeeded",
    security,
    request: { params: JobIdParam },
    responses: { 200: job('The job'), ...errorResponses },
  });
  app.openapi(get, async (c) => answer(c, await runnerOf(deps).get(c.req.valid('param').id, tenantOf(c))) as never);

  const cancel = createRoute({
    method: 'delete',
    path: '/v1/jobs/{id}',
    tags,
    summary: 'Cancel a job that has not started',
    security,
    request: { params: JobIdParam },
    responses: { 200: job('Cancelled'), 409: conflict, ...errorResponses },
  });
  app.openapi(
    cancel,
    async (c) => answer(c, await runnerOf(deps).cancel(c.req.valid('param').id, tenantOf(c))) as never,
  );
}
