// POST /v1/completions (OpenAI legacy completions, + deciserve's decimation). Short prompts run here on the ONNX
// engine, streamed if asked; long ones run as runner jobs and come back as if synchronous when they finish in time.
import { createRoute } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { streamSSE, type SSEStreamingApi } from 'hono/streaming';
import type { JobRequest } from '../../runner/job-request.ts';
import type { CompletionResult } from '../../runner/pass.ts';
import type { AppEnv, EdgeApp, RouteDeps } from '../deps.ts';
import { ClientGoneError } from '../edge-engine.ts';
import { completeAtEdge, type EdgeCompletion } from '../edge-run.ts';
import { ApiError, badRequest } from '../http/errors.ts';
import { pendingResponse, requireRunner, runAsJob, waitBudgetMs } from '../job-flow.ts';
import { Completion } from '../schemas.ts';
import type { CompletionRequest } from '../schemas.ts';
import { checkModel, countTokens, edgeLimit, errorResponses, jobAccepted, markRanOn, openModel, placeWork, ranOnHeaders, reportEdgeTimings, security } from './common.ts';

function toJob(body: CompletionRequest, prompt: string): JobRequest & { type: 'completion' } {
  return {
    type: 'completion',
    model: body.model,
    prompt,
    max_tokens: body.max_tokens,
    temperature: body.temperature,
    top_p: body.top_p,
    top_k: body.top_k ?? 0,
    ...(body.seed != null ? { seed: body.seed } : {}),
    ...(body.stop != null ? { stop: body.stop } : {}),
    decimation: body.decimation,
    ...(body.decimation_params ? { decimation_params: body.decimation_params } : {}),
    ...(body.protect !== undefined ? { protect: body.protect } : {}),
    priority: body.priority,
  };
}

/** A fresh 32-bit seed when the client gave none; the response reports it so the sample can be repeated. */
function randomSeed(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]!;
}

type Chunk = Pick<EdgeCompletion, 'id' | 'object' | 'created' | 'model'> & {
  choices: Array<{ index: 0; text: string; logprobs: null; finish_reason: 'stop' | 'length' | null }>;
  usage?: EdgeCompletion['usage'] | null;
  deciserve?: EdgeCompletion['deciserve'] | (CompletionResult['deciserve'] & { ran_on: 'runner'; job_id: string });
};

const sse = (stream: SSEStreamingApi, data: unknown) => stream.writeSSE({ data: JSON.stringify(data) });

/** The end of an OpenAI completion stream: the last chunk (finish_reason), usage if asked, [DONE]. */
async function finishStream(stream: SSEStreamingApi, base: Omit<Chunk, 'choices'>, result: Pick<EdgeCompletion, 'choices' | 'usage'>, includeUsage: boolean, extras: Chunk['deciserve']) {
  await sse(stream, { ...base, choices: [{ index: 0, text: '', logprobs: null, finish_reason: result.choices[0]!.finish_reason }], deciserve: extras });
  if (includeUsage) await sse(stream, { ...base, choices: [], usage: result.usage });
  await stream.writeSSE({ data: '[DONE]' });
}

function streamError(err: unknown): { error: ReturnType<ApiError['body']>['error'] } {
  const apiError = err instanceof ApiError ? err : new ApiError(500, 'server_error', 'internal_error', 'generation failed');
  return apiError.body();
}

export function registerCompletions(app: EdgeApp, deps: RouteDeps): void {
  const route = createRoute({
    method: 'post',
    path: '/v1/completions',
    tags: ['completions'],
    summary: 'Create a completion (OpenAI-compatible; SSE with stream: true)',
    description:
      'Prompts up to the edge limit run in the Worker; longer ones run on the batch runner with DeciMamba and are ' +
      'returned as if synchronous when they finish within the wait time (`Prefer: wait=<s>` lowers it, ' +
      '`Prefer: respond-async` skips it); otherwise 202 with the job. Idempotency-Key makes a long request one job.',
    security,
    request: { body: { content: { 'application/json': { schema: deps.schemas.completionRequest } }, required: true } },
    responses: {
      200: {
        description: 'The completion (JSON), or a text/event-stream of completion chunks when stream is true.',
        headers: ranOnHeaders,
        content: { 'application/json': { schema: Completion }, 'text/event-stream': { schema: Completion } },
      },
      202: jobAccepted,
      ...errorResponses,
    },
  });

  app.openapi(route, async (c) => {
    const body = c.req.valid('json');
    checkModel(deps, body.model);
    if (body.stream && body.logprobs != null) throw badRequest('unsupported_parameter', 'logprobs are not available with stream', 'logprobs');
    const prompt = typeof body.prompt === 'string' ? body.prompt : body.prompt[0]!;
    const model = await openModel(c, deps);
    const promptTokens = await countTokens(c, deps, model, [prompt]);
    if (promptTokens === 0) throw badRequest('invalid_value', 'prompt tokenizes to nothing', 'prompt');
    const job = toJob(body, prompt);
    const extraPrefills = body.echo && body.logprobs != null ? 1 : 0;
    const placement = placeWork(c, deps, model, job, { promptTokens, newTokens: body.max_tokens, extraPrefills });

    if (placement.where === 'edge') {
      markRanOn(c, 'edge');
      const id = `cmpl-${c.get('requestId')}`;
      const run = { model, modelId: deps.config.modelId, id, signal: c.req.raw.signal };
      const edgeJob = { ...job, seed: job.seed ?? randomSeed() };
      if (!body.stream) {
        const { result, timings } = await completeAtEdge(run, edgeJob, { echo: body.echo, logprobs: body.logprobs ?? null });
        reportEdgeTimings(c, timings);
        return c.json(result, 200);
      }
      return streamSSE(c, async (stream) => {
        const base = { id, object: 'text_completion' as const, created: Math.floor(Date.now() / 1000), model: deps.config.modelId };
        try {
          const { result } = await completeAtEdge(run, edgeJob, {
            echo: body.echo,
            logprobs: null,
            onText: (text) => void sse(stream, { ...base, choices: [{ index: 0, text, logprobs: null, finish_reason: null }] }),
          });
          await finishStream(stream, base, result, body.stream_options?.include_usage === true, result.deciserve);
        } catch (err) {
          if (err instanceof ClientGoneError) return;
          if (!(err instanceof ApiError)) deps.log.error('stream failed', { requestId: c.get('requestId'), error: (err as Error).message });
          await sse(stream, streamError(err));
        }
      });
    }

    markRanOn(c, 'runner');
    if (body.logprobs != null) {
      throw badRequest('unsupported_parameter', `logprobs are only available at the edge (up to ${edgeLimit(deps, model)} prompt tokens)`, 'logprobs');
    }
    const runner = requireRunner(deps, promptTokens, edgeLimit(deps, model));
    const outcome = await runAsJob<CompletionResult>(c, runner, job, waitBudgetMs(c, deps.config.jobs.waitMs), deps.config.jobs.pollMs);
    if (outcome.kind === 'refused') return outcome.response as never;
    if (outcome.kind === 'pending') return pendingResponse(c, outcome.view) as never;
    const stored = outcome.result;
    const result = {
      ...stored,
      choices: stored.choices.map((choice) => ({ ...choice, text: (body.echo ? prompt : '') + choice.text })),
      deciserve: { ...stored.deciserve, ran_on: 'runner' as const, job_id: outcome.view.id },
    };
    if (!body.stream) return c.json(result, 200);
    return runnerResultAsStream(c, result, body.stream_options?.include_usage === true);
  });
}

/** A finished job's completion as an OpenAI stream: one text chunk, then the usual ending. */
function runnerResultAsStream(c: Context<AppEnv>, result: CompletionResult & { deciserve: Chunk['deciserve'] }, includeUsage: boolean) {
  return streamSSE(c, async (stream) => {
    const base = { id: result.id, object: 'text_completion' as const, created: result.created, model: result.model };
    await sse(stream, { ...base, choices: [{ index: 0, text: result.choices[0]!.text, logprobs: null, finish_reason: null }] });
    await finishStream(stream, base, result, includeUsage, result.deciserve);
  });
}
