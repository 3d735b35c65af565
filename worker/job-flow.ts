// Long requests as runner jobs: submit (signed, idempotent), wait up to the configured time, then either the result
// (read through the presigned S3 URL) as if synchronous, or 202 with the job's URL.
import type { Context } from 'hono';
import { endTime, startTime } from 'hono/timing';
import type { JobRequest } from '../protocol/job-request.ts';
import type { AppEnv, RouteDeps } from './deps.ts';
import { ApiError, badRequest } from './http/errors.ts';
import type { RunnerClient, RunnerJobView } from './runner-client.ts';

const CLIENT_KEY = /^[\x21-\x7e]{1,200}$/;

/**
 * The tenant a request acts for: its API key's id (a SHA-256 prefix, never the key). Each key is its own tenant; its
 * jobs are invisible (404) to every other key.
 */
export function tenantOf(c: Context<AppEnv>): string {
  return c.get('apiKeyId');
}

/** The runner's Idempotency-Key: the client's key namespaced by its API key (so tenants never share jobs), else random. */
export function idempotencyKey(c: Context<AppEnv>): string {
  const key = c.req.header('idempotency-key');
  if (key === undefined) return `edge:${crypto.randomUUID()}`;
  if (!CLIENT_KEY.test(key))
    throw badRequest(
      'invalid_idempotency_key',
      'Idempotency-Key must be 1-200 printable ASCII characters',
      'Idempotency-Key',
    );
  return `key:${c.get('apiKeyId')}:${key}`;
}

/** RFC 7240 `Prefer: respond-async` (answer 202 at once) or `Prefer: wait=<seconds>` (wait at most that long). */
export function waitBudgetMs(c: Context, configuredMs: number): number {
  const prefer = c.req.header('prefer') ?? '';
  if (/(^|[,;\s])respond-async($|[,;\s])/i.test(prefer)) return 0;
  const wait = /(?:^|[,;\s])wait=(\d{1,6})/i.exec(prefer);
  return wait ? Math.min(Number(wait[1]) * 1000, configuredMs) : configuredMs;
}

export type PublicJob = RunnerJobView & { url: string };

export function publicJob(c: Context, view: RunnerJobView): PublicJob {
  return { ...view, url: new URL(`/v1/jobs/${view.id}`, c.req.url).toString() };
}

/** A runner error answer passed through as it is (it is already in the OpenAI error shape). */
export function passThrough(response: Response): Response {
  return new Response(response.body, { status: response.status, headers: { 'content-type': 'application/json' } });
}

export function requireRunner(deps: RouteDeps, promptTokens: number, edgeMax: number): RunnerClient {
  if (!deps.runner) {
    throw badRequest(
      'context_length_exceeded',
      `${promptTokens} prompt tokens; this deployment has no batch runner and runs at most ${edgeMax} at the edge`,
      'prompt',
    );
  }
  return deps.runner;
}

export type JobOutcome<T> =
  | { kind: 'result'; result: T; view: RunnerJobView }
  | { kind: 'pending'; view: RunnerJobView }
  | { kind: 'refused'; response: Response };

export async function runAsJob<T>(
  c: Context<AppEnv>,
  runner: RunnerClient,
  job: JobRequest,
  waitMs: number,
): Promise<JobOutcome<T>> {
  startTime(c, 'submit', 'job submitted to the runner');
  const submitted = await runner.submit(job, idempotencyKey(c), tenantOf(c), c.get('requestId'));
  endTime(c, 'submit');
  if (!submitted.ok) return { kind: 'refused', response: passThrough(submitted.response) };
  c.header('x-deciserve-job-id', submitted.view.id);

  startTime(c, 'wait', 'waiting for the job');
  const view = await runner.waitFor(submitted.view, Date.now() + waitMs, tenantOf(c));
  endTime(c, 'wait');
  if (view.status === 'succeeded' && view.result_url) {
    startTime(c, 'result', 'result read from S3');
    const result = await runner.result<T>(view);
    endTime(c, 'result');
    return { kind: 'result', result, view };
  }
  if (view.status === 'failed' || view.status === 'cancelled') throw jobFailure(view);
  return { kind: 'pending', view };
}

/** A job that ended without a result: bad input the runner found (400), or a failure on our side (500). */
function jobFailure(view: RunnerJobView): ApiError {
  const message = `job ${view.id} ${view.status}: ${view.error?.message ?? 'no result'}`;
  if (view.status === 'cancelled') return new ApiError(409, 'conflict_error', 'job_cancelled', message);
  if (view.error?.code === 'invalid_job') return badRequest('invalid_value', message);
  return new ApiError(500, 'server_error', 'job_failed', message);
}

/** Seconds a client should wait before polling a job again. */
export const RETRY_AFTER_S = 2;

export function pendingResponse(c: Context<AppEnv>, view: RunnerJobView): Response {
  const job = publicJob(c, view);
  c.header('Location', job.url);
  c.header('Retry-After', String(RETRY_AFTER_S));
  return c.json(job, 202);
}
