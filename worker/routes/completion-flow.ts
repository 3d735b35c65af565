// One completion run, edge or runner, plain or streamed, shared by /v1/completions and /v1/chat/completions: the
// routes differ only in how a request becomes a prompt and how the answer and its stream chunks are shaped.
import type { Context } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import type { JobRequest } from '../../protocol/job-request.ts';
import type { CompletionResult } from '../../protocol/results.ts';
import type { AppEnv, RouteDeps } from '../deps.ts';
import { ClientGoneError } from '../edge-engine.ts';
import { completeAtEdge, type EdgeCompletion } from '../edge-run.ts';
import { ApiError, badRequest } from '../http/errors.ts';
import type { EdgeModel } from '../model/edge-model.ts';
import { sha256Hex } from '../http/edge-idempotency.ts';
import { idempotencyKey, pendingResponse, requireRunner, runAsJob, waitBudgetMs } from '../job-flow.ts';
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
  answer(done: Finished): unknown;
  /** Chunks sent before any text (chat: the assistant role). */
  opening(base: StreamBase): unknown[];
  delta(base: StreamBase, text: string): unknown;
  closing(base: StreamBase, finishReason: FinishReason, extras: Extras): unknown;
  usage(base: StreamBase, usage: Usage): unknown;
}

export interface CompletionRun {
  job: CompletionJob;
  promptTokens: number;
  stream: boolean;
  includeUsage: boolean;
  echo: boolean;
  logprobs: number | null;
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
  if (includeUsage) await sse(stream, shape.usage(base, done.usage));
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
  const runner = requireRunner(deps, run.promptTokens, edgeLimit(deps, model));
  const outcome = await runAsJob<CompletionResult>(c, runner, job, waitBudgetMs(c, deps.config.jobs.waitMs));
  if (outcome.kind === 'refused') return outcome.response;
  if (outcome.kind === 'pending') return pendingResponse(c, outcome.view);
  const stored = outcome.result;
  const done: Finished = {
    id: stored.id,
    created: stored.created,
    model: stored.model,
    text: (run.echo ? job.prompt : '') + stored.choices[0]!.text,
    finishReason: stored.choices[0]!.finish_reason,
    usage: stored.usage,
    deciserve: { ...stored.deciserve, ran_on: 'runner', job_id: outcome.view.id },
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
