// POST /v1/completions (OpenAI legacy completions, + deciserve's decimation). Short prompts run here on the ONNX
// engine, streamed if asked; long ones run as runner jobs and come back as if synchronous when they finish in time.
import { createRoute } from '@hono/zod-openapi';
import type { EdgeApp, RouteDeps } from '../deps.ts';
import { badRequest } from '../http/errors.ts';
import { Completion } from '../schemas.ts';
import type { CompletionRequest } from '../schemas.ts';
import { checkModel, countTokens, errorResponses, jobAccepted, openModel, ranOnHeaders, security } from './common.ts';
import { type AnswerShape, type CompletionJob, serveCompletion, type StreamBase } from './completion-flow.ts';

function toJob(body: CompletionRequest, prompt: string): CompletionJob {
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

/** The legacy completions shape: `text` choices, `text_completion` objects and chunks. */
export function textShape(): AnswerShape {
  const head = (base: StreamBase) => ({
    id: base.id,
    object: 'text_completion' as const,
    created: base.created,
    model: base.model,
  });
  return {
    idPrefix: 'cmpl',
    answer: (done) => ({
      ...head(done),
      choices: [{ index: 0, text: done.text, finish_reason: done.finishReason, logprobs: done.logprobs ?? null }],
      usage: done.usage,
      deciserve: done.deciserve,
    }),
    opening: () => [],
    delta: (base, text) => ({ ...head(base), choices: [{ index: 0, text, logprobs: null, finish_reason: null }] }),
    closing: (base, finishReason, extras) => ({
      ...head(base),
      choices: [{ index: 0, text: '', logprobs: null, finish_reason: finishReason }],
      deciserve: extras,
    }),
    usage: (base, usage) => ({ ...head(base), choices: [], usage }),
  };
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
    if (body.stream && body.logprobs != null)
      throw badRequest('unsupported_parameter', 'logprobs are not available with stream', 'logprobs');
    const prompt = typeof body.prompt === 'string' ? body.prompt : body.prompt[0]!;
    const model = await openModel(c, deps);
    const promptTokens = await countTokens(c, deps, model, [prompt]);
    if (promptTokens === 0) throw badRequest('invalid_value', 'prompt tokenizes to nothing', 'prompt');
    const run = {
      job: toJob(body, prompt),
      promptTokens,
      stream: body.stream,
      includeUsage: body.stream_options?.include_usage === true,
      echo: body.echo,
      logprobs: body.logprobs ?? null,
    };
    return (await serveCompletion(c, deps, model, run, textShape())) as never;
  });
}
