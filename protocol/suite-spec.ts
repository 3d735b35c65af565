// A quality-suite job's spec and result (`type: "suite"`, run by runner/pass/suite.ts): what the intake validates
// (protocol/job-request.ts) and what a client reads back.
import type { DecimationConfig } from '../mamba/engine.ts';

export const SUITE_TASKS = ['passkey', 'perplexity'] as const;
/** decimamba: the model's length-adaptive policy at every length; decimamba-fixed: the paper's single L_base. */
export const SUITE_VARIANTS = ['mamba', 'decimamba', 'decimamba-fixed'] as const;
export type Task = (typeof SUITE_TASKS)[number];
export type Variant = (typeof SUITE_VARIANTS)[number];
export const SCORED_TOKENS = 100;
/** Prompts one suite job may hold, so a job stays a bounded amount of work and result. */
export const MAX_SUITE_PROMPTS = 5000;

export interface SuiteSpec {
  task: Task;
  lengths: number[];
  /** passkey only: needle depths in [0, 1]. */
  depths?: number[];
  samples: number;
  seed: number;
  variants: Variant[];
  model: string;
}

export interface SampleResult {
  key: string;
  task: Task;
  length: number;
  depth?: number;
  sample: number;
  variant: Variant;
  /** The sample's id inside its suite job (`{job id}/{key}`). */
  jobId: string;
  promptTokens?: number;
  ok: boolean;
  error?: string;
  answer?: string;
  correct?: boolean;
  meanNll?: number;
  perplexity?: number;
  keptTokens?: number;
  latencyMs: number;
}

export interface SuiteSummary {
  task: Task;
  /** variant → length → accuracy (passkey) or perplexity = exp(mean NLL over windows), as train/evaluate.py. */
  byLength: Record<string, Record<string, { value: number; n: number; failed: number; meanLatencyMs: number }>>;
}

/** What a suite job stores as its result (results/{id}.json). */
export interface SuiteResult {
  id: string;
  object: 'bench_suite';
  created: number;
  model: string;
  spec: SuiteSpec;
  summary: SuiteSummary;
  samples: SampleResult[];
  usage: { prompt_tokens: number };
  /** decimation.config: what the DeciMamba samples ran with (null when none did). */
  deciserve: { engine: string; wall_seconds: number; decimation: { config: DecimationConfig | null } };
}

type SpecShape = Pick<SuiteSpec, 'task' | 'lengths' | 'depths' | 'samples' | 'variants'>;

/** Prompts (samples × variants) in a suite. */
export function suitePromptCount(s: SpecShape): number {
  const perLength = (s.task === 'passkey' ? (s.depths?.length ?? 0) : 1) * s.samples * s.variants.length;
  return s.lengths.length * perLength;
}

/** Prompt tokens of the whole suite: its cost in the batch loop's token budget. */
export function suitePromptTokens(s: SpecShape): number {
  const perLength = suitePromptCount({ ...s, lengths: [1] });
  return s.lengths.reduce((a, length) => a + length * perLength, 0);
}
