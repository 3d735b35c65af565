// What the job routes share: the tenant a request acts for, its namespaced Idempotency-Key, the Prefer wait budget,
// the public job view, and the runner's answers passed through. A long request's run as a job (submit, long-poll,
// result) is in routes/completion-flow.ts.
import type { Context } from 'hono';
import type { AppEnv, RouteDeps } from './deps.ts';
import { badRequest } from './http/errors.ts';
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

/** Seconds a client should wait before polling a job again. */
export const RETRY_AFTER_S = 2;
