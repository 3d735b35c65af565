// POST /v1/chat/completions (OpenAI chat completions). The messages are rendered by the chat template
// (worker/chat-template.ts) into one prompt, which then runs exactly like /v1/completions: at the edge when short,
// as a runner job with DeciMamba when long, plain or streamed.
import { createRoute } from '@hono/zod-openapi';
import { COMPLETION_DEFAULTS } from '../../protocol/job-request.ts';
import { renderChat, replyText, TURN_STOP } from '../chat-template.ts';
import type { EdgeApp, RouteDeps } from '../deps.ts';
import { ChatCompletion } from '../schemas.ts';
import { checkModel, completionResponses, countTokens, openModel, security } from './common.ts';
import { type AnswerShape, chunkHead, completionRun, serveCompletion, type StreamBase } from './completion-flow.ts';

/** The chat shape: an assistant message, or `chat.completion.chunk`s opening with the role. */
function chatShape(): AnswerShape {
  const chunkObject = 'chat.completion.chunk';
  const chunk = (base: StreamBase, delta: Record<string, string>, finishReason: string | null) => ({
    ...chunkHead(base, chunkObject),
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  });
  let started = false; // only the first streamed piece can begin with the space after "Assistant:"
  return {
    idPrefix: 'chatcmpl',
    chunkObject,
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
    responses: completionResponses(
      'The chat completion (JSON), or a text/event-stream of chat.completion.chunk when stream is true.',
      ChatCompletion,
    ),
  });

  app.openapi(route, async (c) => {
    const body = c.req.valid('json');
    checkModel(deps, body.model);
    const prompt = renderChat(body.messages);
    const model = await openModel(c, deps);
    const promptTokens = await countTokens(c, deps, model, [prompt]);
    const stops = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
    const run = completionRun(body, prompt, promptTokens, {
      maxTokens: body.max_completion_tokens ?? body.max_tokens ?? COMPLETION_DEFAULTS.maxTokens,
      stop: [...stops, TURN_STOP],
    });
    return (await serveCompletion(c, deps, model, run, chatShape())) as never;
  });
}
