// Pieces the route files share: error responses for the OpenAPI document, the model check, token counting and
// placement with their Server-Timing stages, and the "where it ran" header.
import type { z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { endTime, setMetric, startTime } from 'hono/timing';
import { DecimationError } from '../../mamba/decimation.ts';
import type { DecimationConfig } from '../../mamba/engine.ts';
import { inLoopMeter } from '../../mamba/token-budget.ts';
import { resolveDecimation, type JobRequest } from '../../protocol/job-request.ts';
import type { AppEnv, RouteDeps } from '../deps.ts';
import { nextTick } from '../edge-engine.ts';
import { badRequest, contextTooLong, modelNotFound, rateLimited } from '../http/errors.ts';
import type { EdgeModel } from '../model/edge-model.ts';
import { edgeMaxPromptTokens, place, type Placement, type Work } from '../routing.ts';
import { ErrorResponse, Job } from '../schemas.ts';

export const RAN_ON_HEADER = 'x-deciserve-ran-on';

const error = (description: string) => ({ description, content: { 'application/json': { schema: ErrorResponse } } });

export const errorResponses = {
  400: error('Invalid request (bad JSON or UTF-8, a wrong value, too many tokens)'),
  401: error('Missing or wrong API key'),
  404: error('Unknown model, job or route'),
  413: error('Body too large'),
  415: error('Content-Type is not application/json'),
  429: error('Rate limit reached for this API key'),
  502: error("The runner refused the edge's signature (a deployment error)"),
  503: error('The batch runner or storage is unavailable; retry'),
};

export const conflict = error('Idempotency-Key reused with another request, or the job cannot be cancelled');

export const jobAccepted = {
  description: 'Still running as a job after the wait: poll the job URL (also in Location).',
  content: { 'application/json': { schema: Job } },
};

export const security = [{ bearerAuth: [] }];

/** A completion route's answers: the result as JSON or as an event stream of chunks, a job (202), the errors. */
export function completionResponses<S extends z.ZodType>(description: string, schema: S) {
  return {
    200: {
      description,
      headers: ranOnHeaders,
      content: { 'application/json': { schema }, 'text/event-stream': { schema } },
    },
    202: jobAccepted,
    ...errorResponses,
  };
}

export const ranOnHeaders = {
  'x-deciserve-ran-on': {
    description: 'Where the request ran',
    schema: { type: 'string' as const, enum: ['edge', 'runner'] },
  },
  'server-timing': {
    description: 'Stage timings (tokenize, route, load, prefill, decode or submit, wait, result)',
    schema: { type: 'string' as const },
  },
};

export function checkModel(deps: RouteDeps, model: string): void {
  if (model !== deps.config.modelId) throw modelNotFound(model, deps.config.modelId);
}

export async function openModel(c: Context<AppEnv>, deps: RouteDeps): Promise<EdgeModel> {
  startTime(c, 'model', 'tokenizer and model metadata');
  const model = await deps.model();
  endTime(c, 'model');
  return model;
}

/**
 * Tokens of the prompt (+ continuation), counted the way the runner counts them, with the size limit checked before
 * the work: refused at once when a lower bound is already past it or a run has no cut (mamba/token-budget.ts),
 * otherwise counted in slices that yield to the event loop (other requests and /healthz go on meanwhile), or, on
 * Node, all of it on a thread of its own (deps.promptMeter, mamba/token-meter.ts).
 */
export async function countTokens(
  c: Context<AppEnv>,
  deps: RouteDeps,
  model: EdgeModel,
  texts: string[],
): Promise<number> {
  startTime(c, 'tokenize', 'count tokens');
  const max = deps.config.limits.maxPromptTokens;
  const cost = await (deps.promptMeter ?? inLoopMeter(model.tokenizer)).measure(texts, max);
  if (!cost.ok)
    throw contextTooLong(cost.tokens, max, 'this API', cost.reason === 'lower_bound' ? 'at least ' : 'more than ');
  const tokens = cost.tokens;
  await nextTick(); // lets the clock advance on Cloudflare, where it only moves at I/O
  endTime(c, 'tokenize');
  setMetric(c, 'prompt-tokens', String(tokens)); // a count, so a description rather than a duration
  return tokens;
}

/** Charges the request's tokens to its key's budget (RATE_LIMIT_TOKENS_PER_MINUTE) before any inference: 429 past it. */
async function chargeTokens(c: Context<AppEnv>, deps: RouteDeps, work: Work): Promise<void> {
  if (!deps.tokenLimiter) return;
  const cost = work.promptTokens + work.newTokens + (work.scoredTokens ?? 0);
  const { success } = await deps.tokenLimiter.limit({ key: c.get('apiKeyId'), cost });
  if (!success) {
    c.header('Retry-After', '60');
    throw rateLimited(
      `This request needs ${cost} tokens, past this API key's ${deps.config.rateLimitTokensPerMinute} tokens per minute; retry after the time in Retry-After`,
    );
  }
}

/**
 * Charges work placed at the edge to its key's edge CPU budget (the router's estimate, in ms, before it runs). Past
 * the budget the work goes to the runner, whose CPU is paid for in its queue; without a runner it is a 429.
 */
async function chargeEdgeCpu(c: Context<AppEnv>, deps: RouteDeps, placement: Placement): Promise<Placement> {
  if (!deps.cpuLimiter || placement.where !== 'edge') return placement;
  const cost = Math.max(1, Math.ceil(placement.estimatedMs));
  if ((await deps.cpuLimiter.limit({ key: c.get('apiKeyId'), cost })).success) return placement;
  const spent = `this API key's edge CPU budget (${deps.config.rateLimitEdgeCpuMsPerMinute} ms per minute) is spent`;
  if (deps.runner) return { where: 'runner', estimatedMs: placement.estimatedMs, reason: spent };
  c.header('Retry-After', '60');
  throw rateLimited(
    `This request needs an estimated ${cost} ms of edge CPU; ${spent}; retry after the time in Retry-After`,
  );
}

/** Checks the decimation settings against the model (400 on a config it cannot run), charges the tokens, then places the work. */
export async function placeWork(
  c: Context<AppEnv>,
  deps: RouteDeps,
  model: EdgeModel,
  job: JobRequest,
  work: Work,
): Promise<Placement> {
  let decimation: DecimationConfig | null;
  try {
    // Bad parameters are refused whatever the prompt length (resolveDecimation checks them even where auto is off).
    decimation = resolveDecimation(job, work.promptTokens, model.defaults);
  } catch (err) {
    if (err instanceof DecimationError) throw badRequest('invalid_decimation', err.message, 'decimation_params');
    throw err;
  }
  await chargeTokens(c, deps, work);
  const placement = await chargeEdgeCpu(
    c,
    deps,
    place(deps.config, model, { ...work, decimated: decimation !== null }),
  );
  const missing =
    placement.where === 'edge'
      ? (decimation?.layers.filter((l) => !model.manifest.decimationLayers.includes(l)) ?? [])
      : [];
  if (missing.length > 0) {
    throw badRequest(
      'invalid_decimation',
      `the edge model cannot decimate at layers [${missing}]`,
      'decimation_params.layers',
    );
  }
  setMetric(c, 'route', placement.where === 'edge' ? `edge: ${placement.reason}` : `runner: ${placement.reason}`);
  return placement;
}

export function markRanOn(c: Context<AppEnv>, where: 'edge' | 'runner'): void {
  c.set('ranOn', where);
  c.header(RAN_ON_HEADER, where);
}

export function edgeLimit(deps: RouteDeps, model: EdgeModel): number {
  return edgeMaxPromptTokens(deps.config, model);
}

/** Stage timings of an edge run as Server-Timing metrics. */
export function reportEdgeTimings(
  c: Context<AppEnv>,
  t: { loadMs: number; prefillMs: number; decodeMs: number },
): void {
  setMetric(c, 'load', t.loadMs, 'engine load (first request in an isolate)');
  setMetric(c, 'prefill', t.prefillMs, 'prompt prefill');
  setMetric(c, 'decode', t.decodeMs, 'token generation');
}
