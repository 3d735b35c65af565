// Request and response schemas of the public API (zod, also the source of the OpenAPI document). The deciserve
// extensions (decimation, decimation_params, protect, top_k, priority) are the runner's own field schemas
// (protocol/job-request.ts), so a request validated here is one the runner accepts.
import { z } from '@hono/zod-openapi';
import { COMPLETION_DEFAULTS, jobRequestSchema } from '../protocol/job-request.ts';
import type { EdgeConfig } from './config.ts';

/** `schema`, also accepting null (OpenAI clients send null for "unset"), with null/undefined → `fallback`. */
const orDefault = <T extends z.ZodType, D extends z.output<T>>(schema: T, fallback: D) =>
  schema
    .nullish()
    .transform((v) => (v ?? fallback) as z.output<T>)
    .openapi({ default: fallback });

/** Accepted only as their neutral value: sampling features this server does not implement. */
const neutral = <T extends number | boolean>(value: T, what: string) =>
  z
    .literal(value)
    .nullish()
    .openapi({ description: `Only ${JSON.stringify(value)} (or null) is supported: ${what}.` });

export function apiSchemas(config: EdgeConfig) {
  const job = jobRequestSchema({
    maxNewTokens: config.limits.maxNewTokens,
    maxPromptChars: config.limits.maxBodyBytes,
  });
  const runner = job.shape;
  const decimation = {
    decimation: runner.decimation.openapi({
      description:
        'DeciMamba: "auto" turns it on above the model\'s training length with its length-adaptive budget (deciserve.json lBaseByLength); "on" uses that budget at any length; "fixed" is the paper\'s single L_base; "off" runs plain Mamba.',
    }),
    decimation_params: runner.decimation_params.openapi({
      description: "Overrides of the model's DeciMamba defaults: decimating layers, beta, l_base, min_seq_len.",
    }),
  };
  const text = z.string().min(1).max(config.limits.maxBodyBytes);

  const completionRequest = z
    .strictObject({
      model: z.string().min(1).max(256).openapi({ example: config.modelId }),
      prompt: z.union([text, z.array(text).length(1)]).openapi({
        description: 'The prompt: a string (or an array holding exactly one string).',
        example: 'In the beginning',
      }),
      max_tokens: orDefault(z.number().int().min(0).max(config.limits.maxNewTokens), COMPLETION_DEFAULTS.maxTokens),
      temperature: orDefault(z.number().min(0).max(2), COMPLETION_DEFAULTS.temperature).openapi({
        description: "Default 0 (greedy, unlike OpenAI's 1): the same request gives the same text.",
      }),
      top_p: orDefault(z.number().gt(0).max(1), 1),
      stop: runner.stop.nullish().openapi({ description: 'Up to 4 strings; generation ends before the first one.' }),
      seed: runner.seed.nullish().openapi({ description: 'Sampling seed; the response reports the one used.' }),
      stream: orDefault(z.boolean(), false).openapi({
        description: 'Server-sent events, OpenAI style, ending with data: [DONE].',
      }),
      stream_options: z.strictObject({ include_usage: z.boolean().optional() }).nullish(),
      echo: orDefault(z.boolean(), false),
      logprobs: z.number().int().min(0).max(5).nullish().openapi({
        description: 'Log-probabilities of the sampled tokens and the N most likely ones (edge only, not with stream).',
      }),
      n: neutral(1, 'one completion per request'),
      best_of: neutral(1, 'one completion per request'),
      presence_penalty: neutral(0, 'no penalties'),
      frequency_penalty: neutral(0, 'no penalties'),
      logit_bias: z
        .record(z.string(), z.number())
        .refine((m) => Object.keys(m).length === 0, 'logit_bias is not supported')
        .nullish(),
      suffix: z.null().optional().openapi({ description: 'Not supported (null only).' }),
      user: z.string().max(256).optional(),
      top_k: runner.top_k.optional().openapi({ description: 'deciserve: keep the k most likely tokens (0 = off).' }),
      ...decimation,
      protect: runner.protect.openapi({
        description: 'deciserve: prompt tail that decimation always keeps (the question).',
      }),
      priority: runner.priority.openapi({
        description: 'deciserve: queue priority when the request runs as a job (1 = most urgent).',
      }),
    })
    .openapi('CompletionRequest');

  const textPart = z.strictObject({ type: z.literal('text'), text: z.string().max(config.limits.maxBodyBytes) });
  const message = z.strictObject({
    role: z.enum(['system', 'developer', 'user', 'assistant']),
    content: z.union([z.string().max(config.limits.maxBodyBytes), z.array(textPart).min(1)]),
    name: z.string().max(256).optional().openapi({ description: 'Accepted and not used (the template has no names).' }),
  });
  const newTokens = z.number().int().min(0).max(config.limits.maxNewTokens).nullish();
  const chatCompletionRequest = z
    .strictObject({
      model: completionRequest.shape.model,
      messages: z
        .array(message)
        .min(1)
        .max(1000)
        .openapi({
          description:
            'Rendered as a "System:/User:/Assistant:" transcript ending in "Assistant:" (worker/chat-template.ts).',
          example: [{ role: 'user', content: 'Who said, Let there be light?' }],
        }),
      max_completion_tokens: newTokens.openapi({
        description: `Tokens to generate (default ${COMPLETION_DEFAULTS.maxTokens}).`,
      }),
      max_tokens: newTokens.openapi({ description: 'Older name of max_completion_tokens.' }),
      temperature: completionRequest.shape.temperature,
      top_p: completionRequest.shape.top_p,
      stop: z
        .union([z.string().min(1).max(256), z.array(z.string().min(1).max(256)).max(3)])
        .nullish()
        .openapi({ description: 'Up to 3 strings (the 4th slot is the template\'s turn boundary, "\\nUser:").' }),
      seed: completionRequest.shape.seed,
      stream: completionRequest.shape.stream,
      stream_options: completionRequest.shape.stream_options,
      n: neutral(1, 'one choice per request'),
      logprobs: neutral(false, 'no logprobs in chat'),
      top_logprobs: z.null().optional().openapi({ description: 'Not supported (null only).' }),
      presence_penalty: neutral(0, 'no penalties'),
      frequency_penalty: neutral(0, 'no penalties'),
      logit_bias: completionRequest.shape.logit_bias,
      user: completionRequest.shape.user,
      top_k: completionRequest.shape.top_k,
      ...decimation,
      protect: completionRequest.shape.protect,
      priority: completionRequest.shape.priority,
    })
    .refine(
      (r) => r.max_tokens == null || r.max_completion_tokens == null || r.max_tokens === r.max_completion_tokens,
      {
        message: 'max_tokens and max_completion_tokens disagree',
        path: ['max_completion_tokens'],
      },
    )
    .openapi('ChatCompletionRequest');

  const scoreRequest = z
    .strictObject({
      model: z.string().min(1).max(256).openapi({ example: config.modelId }),
      prompt: text.openapi({
        description: 'The text to score, or the context when `continuation` is given.',
        example: 'And God said, Let there be light',
      }),
      continuation: text.optional().openapi({ description: 'Score only these tokens, given the prompt.' }),
      ...decimation,
      priority: runner.priority,
    })
    .openapi('ScoreRequest');

  return { completionRequest, chatCompletionRequest, scoreRequest, jobRequest: job.openapi('JobRequest') };
}

export type ApiSchemas = ReturnType<typeof apiSchemas>;
export type CompletionRequest = z.output<ApiSchemas['completionRequest']>;
export type ScoreRequest = z.output<ApiSchemas['scoreRequest']>;
export type ChatCompletionRequest = z.output<ApiSchemas['chatCompletionRequest']>;

export const ErrorResponse = z
  .object({
    error: z.object({
      message: z.string(),
      type: z.string(),
      param: z.string().nullable(),
      code: z.string().nullable(),
    }),
  })
  .openapi('Error');

const decimationReport = z.object({
  config: z
    .object({ layers: z.array(z.number()), beta: z.number(), lBase: z.number(), minSeqLen: z.number() })
    .nullable(),
  kept: z
    .array(z.object({ layer: z.number(), tokens: z.number() }))
    .openapi({ description: 'Tokens each decimating layer kept.' }),
  applied: z
    .boolean()
    .openapi({ description: 'Whether any token was dropped (false: configured, but everything was kept).' }),
});

export const Extras = z
  .object({
    ran_on: z.enum(['edge', 'runner']),
    engine: z.string(),
    seed: z.number().optional(),
    job_id: z.string().optional(),
    decimation: decimationReport,
  })
  .openapi('DeciserveExtras');

export const CompletionLogprobs = z
  .object({
    tokens: z.array(z.string()),
    token_logprobs: z.array(z.number().nullable()),
    top_logprobs: z.array(z.record(z.string(), z.number()).nullable()),
    text_offset: z.array(z.number()),
  })
  .openapi('CompletionLogprobs');

export const Completion = z
  .object({
    id: z.string(),
    object: z.literal('text_completion'),
    created: z.number(),
    model: z.string(),
    choices: z.array(
      z.object({
        index: z.number(),
        text: z.string(),
        finish_reason: z.enum(['stop', 'length']).nullable(),
        logprobs: CompletionLogprobs.nullable(),
      }),
    ),
    usage: z.object({ prompt_tokens: z.number(), completion_tokens: z.number(), total_tokens: z.number() }).optional(),
    deciserve: Extras.optional(),
  })
  .openapi('Completion');

export const ChatCompletion = z
  .object({
    id: z.string(),
    object: z.literal('chat.completion'),
    created: z.number(),
    model: z.string(),
    choices: z.array(
      z.object({
        index: z.number(),
        message: z.object({ role: z.literal('assistant'), content: z.string(), refusal: z.null() }),
        finish_reason: z.enum(['stop', 'length']),
        logprobs: z.null(),
      }),
    ),
    usage: z.object({ prompt_tokens: z.number(), completion_tokens: z.number(), total_tokens: z.number() }),
    deciserve: Extras,
  })
  .openapi('ChatCompletion');

export const Score = z
  .object({
    id: z.string(),
    object: z.literal('score'),
    created: z.number(),
    model: z.string(),
    tokens: z.array(z.number()).openapi({ description: 'Scored token ids.' }),
    token_strings: z.array(z.string()).openapi({ description: 'Each scored token decoded on its own.' }),
    logprobs: z
      .array(z.number())
      .openapi({ description: 'Natural-log probability of each scored token given everything before it.' }),
    nll: z.number(),
    mean_nll: z.number(),
    perplexity: z.number(),
    usage: z.object({ prompt_tokens: z.number(), total_tokens: z.number() }),
    deciserve: Extras,
  })
  .openapi('Score');

export const Job = z
  .object({
    id: z.string(),
    object: z.literal('job'),
    type: z.enum(['completion', 'score']).optional(),
    status: z.enum(['queued', 'running', 'succeeded', 'failed', 'cancelled']),
    created_at: z.number().optional(),
    prompt_tokens: z.number().optional(),
    attempts: z.number().optional().openapi({ description: 'Attempts started so far, the running one included.' }),
    result_url: z
      .string()
      .optional()
      .openapi({ description: 'Presigned S3 GET URL of the stored result (when succeeded).' }),
    error: z.object({ message: z.string(), code: z.string() }).optional(),
    url: z.string().openapi({ description: 'This job on this API.' }),
  })
  .openapi('Job');

export const JobIdParam = z.object({
  id: z
    .string()
    .regex(/^job_[a-z0-9]{26}$/)
    .openapi({ param: { name: 'id', in: 'path' }, example: 'job_0123456789abcdefghijklmnop' }),
});

export const Model = z
  .object({
    id: z.string(),
    object: z.literal('model'),
    created: z.number(),
    owned_by: z.string(),
    deciserve: z.object({
      training_length: z.number(),
      edge_max_prompt_tokens: z.number(),
      edge_max_decimation_tokens: z
        .number()
        .openapi({ description: 'Longest prompt run at the edge with DeciMamba on.' }),
      max_prompt_tokens: z.number(),
      max_new_tokens: z.number(),
      long_context: z
        .boolean()
        .openapi({ description: 'Whether prompts above edge_max_prompt_tokens run as jobs here.' }),
      decimation_defaults: z.object({
        layers: z.array(z.number()),
        beta: z.number(),
        lBase: z.number(),
        minSeqLen: z.number(),
      }),
      edge_engine: z.string(),
    }),
  })
  .openapi('Model');

export const ModelList = z.object({ object: z.literal('list'), data: z.array(Model) }).openapi('ModelList');
