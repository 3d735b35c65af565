// One completion run, edge or runner, plain or streamed, shared by /v1/completions and /v1/chat/completions: the
// routes differ only in how a request becomes a prompt and how the answer and its stream chunks are shaped. The runner
// half (runOnRunner: submit, wait on the runner's long-poll, read the stored result) also serves /v1/score.
import type { Context } from 'hono';
import { endTime, startTime } from 'hono/timing';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import type { JobRequest } from '../../protocol/job-request.ts';
import type { CompletionResult } from '../../protocol/results.ts';
import type { AppEnv, RouteDeps } from '../deps.ts';
import { ClientGoneError } from '../edge-engine.ts';
import { completeAtEdge, type EdgeCompletion } from '../edge-run.ts';
import { ApiError, badRequest } from '../http/errors.ts';
import type { EdgeModel } from '../model/edge-model.ts';
import { sha256Hex } from '../http/edge-idempotency.ts';
import {
  idempotencyKey,
  passThrough,
  publicJob,
  RETRY_AFTER_S,
  requireRunner,
  tenantOf,
  waitBudgetMs,
} from '../job-flow.ts';
import type { RunnerJobView } from '../runner-client.ts';
import type { CompletionRequest } from '../schemas.ts';
import { edgeLimit, markRanOn, placeWork, reportEdgeTimings } from './common.ts';

export type CompletionJob = JobRequest & { type: 'completion' };
export type FinishReason = 'stop' | 'length';
type RunnerExtras = CompletionResult['deciserve'] & { ran_on: 'runner'; job_id: string };
export type Extras = EdgeCompletion['deciserve'] | RunnerExtras;
export type Usage = CompletionResult['usage'];

/** A finished completion, wherever it ran (text already includes the echoed prompt when asked). */
export interface Finished {
  id: string;
  created: number;
  model: string;
  text: string;
  finishReason: FinishReason;
  usage: Usage;
  deciserve: Extras;
  /** Edge only, /v1/completions with logprobs. */
  logprobs?: EdgeCompletion['choices'][0]['logprobs'];
}

export interface StreamBase {
  id: string;
  created: number;
  model: string;
}

/** How one API shapes its answers; a fresh one per request (a shape may keep per-stream state). */
export interface AnswerShape {
  idPrefix: string;
  /** The `object` of every stream chunk. */
  chunkObject: string;
  answer(done: Finished): unknown;
  /** Chunks sent before any text (chat: the assistant role). */
  opening(base: StreamBase): unknown[];
  delta(base: StreamBase, text: string): unknown;
  closing(base: StreamBase, finishReason: FinishReason, extras: Extras): unknown;
}

/** The fields every stream chunk (and the text completion) starts with. */
export function chunkHead<O extends string>(base: StreamBase, object: O) {
  return { id: base.id, object, created: base.created, model: base.model };
}

export interface CompletionRun {
  job: CompletionJob;
  promptTokens: number;
  stream: boolean;
  includeUsage: boolean;
  echo: boolean;
  logprobs: number | null;
}

/** The request fields both completion APIs pass to the job as they are, and the streaming options. */
type CompletionBody = Pick<
  CompletionRequest,
  | 'model'
  | 'temperature'
  | 'top_p'
  | 'top_k'
  | 'seed'
  | 'decimation'
  | 'decimation_params'
  | 'protect'
  | 'priority'
  | 'stream'
  | 'stream_options'
>;

/** What the two APIs read differently: max tokens and stops; echo and logprobs only the text endpoint takes. */
interface RunOptions {
  maxTokens: number;
  stop: CompletionJob['stop'] | null;
  echo?: boolean;
  logprobs?: number | null;
}

/**
 * A completion request's run: the runner job (also what an Idempotency-Key is matched against, so keep its key
 * order) and how to answer.
 */
export function completionRun(
  body: CompletionBody,
  prompt: string,
  promptTokens: number,
  { maxTokens, stop, echo = false, logprobs = null }: RunOptions,
): CompletionRun {
  const job: CompletionJob = {
    type: 'completion',
    model: body.model,
    prompt,
    max_tokens: maxTokens,
    temperature: body.temperature,
    top_p: body.top_p,
    top_k: body.top_k ?? 0,
    ...(body.seed != null ? { seed: body.seed } : {}),
    ...(stop != null ? { stop } : {}),
    decimation: body.decimation,
    ...(body.decimation_params ? { decimation_params: body.decimation_params } : {}),
    ...(body.protect !== undefined ? { protect: body.protect } : {}),
    priority: body.priority,
  };
  const includeUsage = body.stream_options?.include_usage === true;
  return { job, promptTokens, stream: body.stream, includeUsage, echo, logprobs };
}

/** A fresh 32-bit seed when the client gave none; the response reports it so the sample can be repeated. */
function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]!;
}

const sse = (stream: SSEStreamingApi, data: unknown) => stream.writeSSE({ data: JSON.stringify(data) });

async function finishStream(
  stream: SSEStreamingApi,
  shape: AnswerShape,
  base: StreamBase,
  done: Pick<Finished, 'finishReason' | 'usage' | 'deciserve'>,
  includeUsage: boolean,
) {
  await sse(stream, shape.closing(base, done.finishReason, done.deciserve));
  if (includeUsage) await sse(stream, { ...chunkHead(base, shape.chunkObject), choices: [], usage: done.usage });
  await stream.writeSSE({ data: '[DONE]' });
}

function streamError(err: unknown): { error: ReturnType<ApiError['body']>['error'] } {
  const apiError =
    err instanceof ApiError ? err : new ApiError(500, 'server_error', 'internal_error', 'generation failed');
  return apiError.body();
}

function fromEdge(result: EdgeCompletion): Finished {
  const choice = result.choices[0]!;
  return {
    id: result.id,
    created: result.created,
    model: result.model,
    text: choice.text,
    finishReason: choice.finish_reason,
    usage: result.usage,
    deciserve: result.deciserve,
    logprobs: choice.logprobs,
  };
}

export async function serveCompletion(
  c: Context<AppEnv>,
  deps: RouteDeps,
  model: EdgeModel,
  run: CompletionRun,
  shape: AnswerShape,
): Promise<Response> {
  const { job } = run;
  const scoredTokens = run.echo && run.logprobs != null ? run.promptTokens : 0;
  const placement = await placeWork(c, deps, model, job, {
    promptTokens: run.promptTokens,
    newTokens: job.max_tokens,
    scoredTokens,
  });

  if (placement.where === 'edge') {
    markRanOn(c, 'edge');
    const id = `${shape.idPrefix}-${c.get('requestId')}`;
    const edgeRun = { model, modelId: deps.config.modelId, id, signal: c.req.raw.signal };
    const edgeJob = { ...job, seed: job.seed ?? randomSeed() };
    // The client's Idempotency-Key (validated by idempotencyKey: 400 when malformed), namespaced by its API key.
    const keyed = c.req.header('idempotency-key') !== undefined ? idempotencyKey(c) : null;
    const bodySha = keyed ? await sha256Hex(c.get('rawBody')) : '';
    const kept = keyed ? deps.idempotency.lookup(keyed, bodySha) : null;
    if (kept?.answer !== undefined && !run.stream) return c.json(kept.answer as object, 200);
    const release = await deps.gate.acquire();
    if (!run.stream) {
      try {
        const { result, timings } = await completeAtEdge(edgeRun, edgeJob, { echo: run.echo, logprobs: run.logprobs });
        reportEdgeTimings(c, timings);
        const answer = shape.answer(fromEdge(result)) as object;
        if (keyed) deps.idempotency.remember(keyed, bodySha, answer);
        return c.json(answer, 200);
      } finally {
        release();
      }
    }
    if (keyed) deps.idempotency.remember(keyed, bodySha); // a stream is not replayed, but the key is taken
    return streamSSE(c, async (stream) => {
      const base = { id, created: Math.floor(Date.now() / 1000), model: deps.config.modelId };
      try {
        for (const chunk of shape.opening(base)) await sse(stream, chunk);
        const { result } = await completeAtEdge(edgeRun, edgeJob, {
          echo: run.echo,
          logprobs: null,
          onText: (text) => void sse(stream, shape.delta(base, text)),
        });
        await finishStream(stream, shape, base, fromEdge(result), run.includeUsage);
      } catch (err) {
        if (err instanceof ClientGoneError) return;
        if (!(err instanceof ApiError))
          deps.log.error('stream failed', { requestId: c.get('requestId'), error: (err as Error).message });
        await sse(stream, streamError(err));
      } finally {
        release();
      }
    });
  }

  markRanOn(c, 'runner');
  if (run.logprobs != null) {
    // Refused before any work: the runner has no logprobs, and the edge would pass its CPU budget.
    throw badRequest(
      'unsupported_parameter',
      `logprobs are only available at the edge (up to ${edgeLimit(deps, model)} prompt tokens within its CPU budget); here ${placement.reason}`,
      'logprobs',
    );
  }
  const outcome = await runOnRunner<CompletionResult>(c, deps, model, job, run.promptTokens);
  if (outcome instanceof Response) return outcome;
  const stored = outcome.result;
  const done: Finished = {
    id: stored.id,
    created: stored.created,
    model: stored.model,
    text: (run.echo ? job.prompt : '') + stored.choices[0]!.text,
    finishReason: stored.choices[0]!.finish_reason,
    usage: stored.usage,
    deciserve: { ...stored.deciserve, ran_on: 'runner', job_id: outcome.jobId },
  };
  if (!run.stream) return c.json(shape.answer(done) as object, 200);
  // A finished job as a stream: one text chunk, then the usual ending.
  return streamSSE(c, async (stream) => {
    const base = { id: done.id, created: done.created, model: done.model };
    for (const chunk of shape.opening(base)) await sse(stream, chunk);
    await sse(stream, shape.delta(base, done.text));
    await finishStream(stream, shape, base, done, run.includeUsage);
  });
}

/**
 * The runner half of a run: the job submitted (signed, idempotent), waited for on the runner's long-poll within the
 * client's budget (Prefer), its result read through the presigned S3 URL. A Response where there is nothing to return
 * as if synchronous: the runner refused the job (its error passed through), or it is still running (202, job URL).
 */
export async function runOnRunner<T>(
  c: Context<AppEnv>,
  deps: RouteDeps,
  model: EdgeModel,
  job: JobRequest,
  promptTokens: number,
): Promise<{ result: T; jobId: string } | Response> {
  const runner = requireRunner(deps, promptTokens, edgeLimit(deps, model));
  startTime(c, 'submit', 'job submitted to the runner');
  const submitted = await runner.submit(job, idempotencyKey(c), tenantOf(c), c.get('requestId'));
  endTime(c, 'submit');
  if (!submitted.ok) return passThrough(submitted.response);
  c.header('x-deciserve-job-id', submitted.view.id);

  startTime(c, 'wait', 'waiting for the job');
  const view = await runner.waitFor(submitted.view, Date.now() + waitBudgetMs(c, deps.config.jobs.waitMs), tenantOf(c));
  endTime(c, 'wait');
  if (view.status === 'succeeded' && view.result_url) {
    startTime(c, 'result', 'result read from S3');
    const result = await runner.result<T>(view);
    endTime(c, 'result');
    return { result, jobId: view.id };
  }
  if (view.status === 'failed' || view.status === 'cancelled') throw jobFailure(view);
  const pending = publicJob(c, view);
  c.header('Location', pending.url);
  c.header('Retry-After', String(RETRY_AFTER_S));
  return c.json(pending, 202);
}

/** A job that ended without a result: bad input the runner found (400), or a failure on our side (500). */
function jobFailure(view: RunnerJobView): ApiError {
  const message = `job ${view.id} ${view.status}: ${view.error?.message ?? 'no result'}`;
  if (view.status === 'cancelled') return new ApiError(409, 'conflict_error', 'job_cancelled', message);
  if (view.error?.code === 'invalid_job') return badRequest('invalid_value', message);
  return new ApiError(500, 'server_error', 'job_failed', message);
}
