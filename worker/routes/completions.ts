// POST /v1/completions (OpenAI legacy completions, + deciserve's decimation). Short prompts run here on the ONNX
// engine, streamed if asked; long ones run as runner jobs and come back as if synchronous when they finish in time.
import { createRoute } from '@hono/zod-openapi';
import type { EdgeApp, RouteDeps } from '../deps.ts';
import { badRequest } from '../http/errors.ts';
import { Completion } from '../schemas.ts';
import { checkModel, completionResponses, countTokens, openModel, security } from './common.ts';
import { type AnswerShape, chunkHead, completionRun, serveCompletion, type StreamBase } from './completion-flow.ts';

/** The legacy completions shape: `text` choices, `text_completion` objects and chunks. */
export function textShape(): AnswerShape {
  const chunkObject = 'text_completion';
  const head = (base: StreamBase) => chunkHead(base, chunkObject);
  return {
    idPrefix: 'cmpl',
    chunkObject,
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
    responses: completionResponses(
      'The completion (JSON), or a text/event-stream of completion chunks when stream is true.',
      Completion,
    ),
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
    const run = completionRun(body, prompt, promptTokens, {
      maxTokens: body.max_tokens,
      stop: body.stop,
      echo: body.echo,
      logprobs: body.logprobs ?? null,
    });
    return (await serveCompletion(c, deps, model, run, textShape())) as never;
  });
}
