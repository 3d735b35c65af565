// What the edge API submits to the runner's intake (one long-document job), and how it becomes engine options.
// The runner also takes `type: "suite"`: a whole quality benchmark as one job (protocol/suite-spec.ts, run by runner/pass/suite.ts).
import { z } from 'zod';
import { lBaseForLength, validateDecimation } from '../mamba/decimation.ts';
import type { DecimationConfig } from '../mamba/engine.ts';
import type { ModelDefaults } from '../mamba/model-defaults.ts';
import { MAX_SUITE_PROMPTS, SUITE_TASKS, SUITE_VARIANTS, suitePromptCount } from './suite-spec.ts';

export interface RequestLimits {
  maxNewTokens: number;
  maxPromptChars: number;
}

const decimationParams = z.strictObject({
  layers: z.array(z.number().int().min(0).max(1024)).min(1).max(64).optional(),
  beta: z.number().gt(0).max(1).optional(),
  l_base: z.number().int().min(1).max(100_000_000).optional(),
  min_seq_len: z.number().int().min(0).max(100_000_000).optional(),
});

const webhook = z.strictObject({
  url: z.url({ protocol: /^https?$/ }).max(2048),
});

/**
 * Defaults of a completion, the same for /v1/completions, /v1/chat/completions, /v1/jobs and the CLI: greedy
 * (temperature 0, unlike OpenAI's 1) so a repeated request gives the same text; sampling is opt-in.
 */
export const COMPLETION_DEFAULTS = { temperature: 0, maxTokens: 16 } as const;

const model = z.string().min(1).max(256);
/** 1 = most urgent, 10 = least. */
const priority = z.number().int().min(1).max(10).default(5);
const metadata = z
  .record(z.string().min(1).max(64), z.string().max(512))
  .refine((m) => Object.keys(m).length <= 16, 'at most 16 metadata keys')
  .optional();

/** Completion and score jobs: what the edge API sends (its /v1/jobs schema is this one). */
export function jobRequestSchema(limits: RequestLimits) {
  const text = z.string().max(limits.maxPromptChars);
  return z
    .strictObject({
      type: z.enum(['completion', 'score']),
      model,
      /** completion: the prompt; score: the text (or the context when `continuation` is given). */
      prompt: text.min(1),
      /** score only: score these tokens given `prompt` (tokenized separately and appended). */
      continuation: text.min(1).optional(),
      max_tokens: z.number().int().min(0).max(limits.maxNewTokens).default(COMPLETION_DEFAULTS.maxTokens),
      temperature: z.number().min(0).max(2).default(COMPLETION_DEFAULTS.temperature),
      top_p: z.number().gt(0).max(1).default(1),
      top_k: z.number().int().min(0).max(100_000).default(0),
      /** Sampling seed; when absent the runner derives one from the job id, so a retry samples the same tokens. */
      seed: z.number().int().min(0).max(0xffffffff).optional(),
      stop: z.union([z.string().min(1).max(256), z.array(z.string().min(1).max(256)).max(4)]).optional(),
      /** auto: DeciMamba above the training length with the model's length-adaptive budget; on: that at any length;
       * fixed: the paper's form with one L_base at any length; off: plain Mamba. */
      decimation: z.enum(['auto', 'on', 'fixed', 'off']).default('auto'),
      decimation_params: decimationParams.optional(),
      /** Tail of the prompt that decimation always keeps (the question). */
      protect: z.number().int().min(1).max(10_000_000).optional(),
      priority,
      webhook: webhook.optional(),
      metadata,
    })
    .superRefine((r, ctx) => {
      if (r.type === 'completion' && r.continuation !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['continuation'], message: 'continuation is only for score jobs' });
      }
    });
}

export type JobRequest = z.infer<ReturnType<typeof jobRequestSchema>>;

const distinct = (list: unknown[]) => new Set(list).size === list.length;

/** A quality suite: prompts are built on the runner from the model's haystack.txt. Lengths are checked against the runner's prompt-token limit at intake. */
const suiteSpec = z
  .strictObject({
    task: z.enum(SUITE_TASKS),
    lengths: z
      .array(z.number().int().min(128).max(100_000_000))
      .min(1)
      .max(64)
      .refine(distinct, 'lengths must be distinct'),
    /** passkey only: needle depths. */
    depths: z.array(z.number().min(0).max(1)).min(1).max(64).refine(distinct, 'depths must be distinct').optional(),
    /** passkey: prompts per length and depth; perplexity: windows per length. */
    samples: z.number().int().min(1).max(MAX_SUITE_PROMPTS),
    seed: z.number().int().min(0).max(0xffffffff).default(0),
    variants: z
      .array(z.enum(SUITE_VARIANTS))
      .min(1)
      .max(SUITE_VARIANTS.length)
      .refine(distinct, 'variants must be distinct')
      .default(['mamba', 'decimamba']),
  })
  .superRefine((s, ctx) => {
    if (s.task === 'passkey' && s.depths === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['depths'],
        message: 'passkey suites need depths (needle positions in [0, 1])',
      });
    if (s.task === 'perplexity' && s.depths !== undefined)
      ctx.addIssue({ code: 'custom', path: ['depths'], message: 'depths is only for passkey suites' });
    if (!Array.isArray(s.lengths) || !Array.isArray(s.variants)) return;
    const prompts = suitePromptCount(s);
    if (prompts > MAX_SUITE_PROMPTS)
      ctx.addIssue({
        code: 'custom',
        path: ['samples'],
        message: `the suite has ${prompts} prompts (lengths × depths × samples × variants); at most ${MAX_SUITE_PROMPTS}`,
      });
  });

const suiteRequest = z.strictObject({
  type: z.literal('suite'),
  model,
  suite: suiteSpec,
  priority,
  webhook: webhook.optional(),
  metadata,
});

/** Everything the runner's intake takes: completion and score jobs (unchanged), and suites. */
export function runnerJobRequestSchema(limits: RequestLimits) {
  return z.discriminatedUnion('type', [jobRequestSchema(limits), suiteRequest], {
    error: (iss) =>
      iss.code === 'invalid_union' ? 'Invalid option: expected one of "completion"|"score"|"suite"' : undefined,
  });
}

export type SuiteJobRequest = z.infer<typeof suiteRequest>;
export type RunnerJobRequest = JobRequest | SuiteJobRequest;

/**
 * The decimation a job runs with, or null for plain Mamba. Throws DecimationError on a config the model cannot run;
 * the config is built and checked even where `auto` leaves it off (a short prompt), so bad parameters are refused
 * whatever the prompt's length, in this one call.
 */
export function resolveDecimation(
  request: JobRequest,
  promptTokens: number,
  model: ModelDefaults,
): DecimationConfig | null {
  const mode = request.decimation;
  if (mode === 'off') return null;
  const base = model.decimation;
  const p = request.decimation_params ?? {};
  const adaptive = mode !== 'fixed' && model.lBaseByLength !== undefined;
  const config: DecimationConfig = {
    layers: p.layers ?? base.layers,
    beta: p.beta ?? base.beta,
    // an explicit l_base is the fixed form; otherwise the budget for this prompt's length
    lBase: p.l_base ?? (adaptive ? lBaseForLength(model.lBaseByLength!, promptTokens) : base.lBase),
    minSeqLen: p.min_seq_len ?? base.minSeqLen,
  };
  validateDecimation(config, model.nLayer);
  const on = mode !== 'auto' || promptTokens > model.trainLen;
  return on ? config : null;
}

export function stopStrings(request: JobRequest): string[] {
  if (request.stop === undefined) return [];
  return typeof request.stop === 'string' ? [request.stop] : request.stop;
}

/** Stable 32-bit seed from the job id (FNV-1a), used when the request names none. */
export function seedFromJobId(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
