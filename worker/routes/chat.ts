// POST /v1/chat/completions (OpenAI chat completions). The messages are rendered by the chat template
// (worker/chat-template.ts) into one prompt, which then runs exactly like /v1/completions: at the edge when short,
// as a runner job with DeciMamba when long, plain or streamed.
import { createRoute } from '@hono/zod-openapi';
import { COMPLETION_DEFAULTS } from '../../protocol/job-request.ts';
import { renderChat, replyText, TURN_STOP } from '../chat-template.ts';
import type { EdgeApp, RouteDeps } from '../deps.ts';
import { ChatCompletion } from '../schemas.ts';
import type { ChatCompletionRequest } from '../schemas.ts';
import { checkModel, countTokens, errorResponses, jobAccepted, openModel, ranOnHeaders, security } from './common.ts';
import { type AnswerShape, type CompletionJob, serveCompletion, type StreamBase } from './completion-flow.ts';

function toJob(body: ChatCompletionRequest, prompt: string): CompletionJob {
  const stops = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  return {
    type: 'completion',
    model: body.model,
    prompt,
    max_tokens: body.max_completion_tokens ?? body.max_tokens ?? COMPLETION_DEFAULTS.maxTokens,
    temperature: body.temperature,
    top_p: body.top_p,
    top_k: body.top_k ?? 0,
    ...(body.seed != null ? { seed: body.seed } : {}),
    stop: [...stops, TURN_STOP],
    decimation: body.decimation,
    ...(body.decimation_params ? { decimation_params: body.decimation_params } : {}),
    ...(body.protect !== undefined ? { protect: body.protect } : {}),
    priority: body.priority,
  };
}

/** The chat shape: an assistant message, or `chat.completion.chunk`s opening with the role. */
function chatShape(): AnswerShape {
  const head = (base: StreamBase) => ({
    id: base.id,
    object: 'chat.completion.chunk' as const,
    created: base.created,
    model: base.model,
  });
  const chunk = (base: StreamBase, delta: Record<string, string>, finishReason: string | null) => ({
    ...head(base),
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  });
  let started = false; // only the first streamed piece can begin with the space after "Assistant:"
  return {
    idPrefix: 'chatcmpl',
    answer: (done) => ({
      id: done.id,
      object: 'chat.completion',
      created: done.created,
      model: done.model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: replyText(done.text), refusal: null },
          finish_reason: done.finishReason,
          logprobs: null,
        },
      ],
      usage: done.usage,
      deciserve: done.deciserve,
    }),
    opening: (base) => [chunk(base, { role: 'assistant', content: '' }, null)],
    delta: (base, text) => {
      const content = started ? text : replyText(text);
      started = true;
      return chunk(base, { content }, null);
    },
    closing: (base, finishReason, extras) => ({ ...chunk(base, {}, finishReason), deciserve: extras }),
    usage: (base, usage) => ({ ...head(base), choices: [], usage }),
  };
}

export function registerChat(app: EdgeApp, deps: RouteDeps): void {
  const route = createRoute({
    method: 'post',
    path: '/v1/chat/completions',
    tags: ['completions'],
    summary: 'Create a chat completion (OpenAI-compatible; SSE with stream: true)',
    description:
      'The messages become one prompt through the chat template for base models ("System:", "User:" and ' +
      '"Assistant:" lines ending in "Assistant:"; generation stops at the next "\\nUser:"), then run like ' +
      '/v1/completions: short prompts in the Worker, long ones as runner jobs with DeciMamba (202 when not done in time).',
    security,
    request: {
      body: { content: { 'application/json': { schema: deps.schemas.chatCompletionRequest } }, required: true },
    },
    responses: {
      200: {
        description: 'The chat completion (JSON), or a text/event-stream of chat.completion.chunk when stream is true.',
        headers: ranOnHeaders,
        content: { 'application/json': { schema: ChatCompletion }, 'text/event-stream': { schema: ChatCompletion } },
      },
      202: jobAccepted,
      ...errorResponses,
    },
  });

  app.openapi(route, async (c) => {
    const body = c.req.valid('json');
    checkModel(deps, body.model);
    const prompt = renderChat(body.messages);
    const model = await openModel(c, deps);
    const promptTokens = await countTokens(c, deps, model, [prompt]);
    const run = {
      job: toJob(body, prompt),
      promptTokens,
      stream: body.stream,
      includeUsage: body.stream_options?.include_usage === true,
      echo: false,
      logprobs: null,
    };
    return (await serveCompletion(c, deps, model, run, chatShape())) as never;
  });
}
