// What a completion or score job stores as its result (results/{id}.json) and the edge returns: OpenAI-shaped, plus
// a `deciserve` block. A suite's result is in protocol/suite-spec.ts.
import type { DecimationConfig, KeptIndices } from '../mamba/engine.ts';
import type { SuiteResult } from './suite-spec.ts';

export interface CompletionResult {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: Array<{ index: 0; text: string; finish_reason: 'stop' | 'length'; logprobs: null }>;
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  deciserve: ResultExtras;
}

export interface ScoreJobResult {
  id: string;
  object: 'score';
  created: number;
  model: string;
  /** Scored token ids and their natural-log probabilities. */
  tokens: number[];
  logprobs: number[];
  nll: number;
  mean_nll: number;
  perplexity: number;
  usage: { prompt_tokens: number; total_tokens: number };
  deciserve: ResultExtras;
}

export type JobResult = CompletionResult | ScoreJobResult | SuiteResult;

export interface ResultExtras {
  engine: string;
  seed?: number;
  decimation: { config: DecimationConfig | null; kept: Array<{ layer: number; tokens: number }>; applied: boolean };
}

export function keptSummary(kept: KeptIndices[]): Array<{ layer: number; tokens: number }> {
  return kept.map((k) => ({ layer: k.layer, tokens: k.indices.length }));
}

/**
 * What decimation did to a prefill of `inputTokens`. `applied` is false when it was configured but every decimating
 * layer kept every token: a prompt within L_base, or a whole-prompt score (its protected span is the whole prompt).
 */
export function decimationReport(
  config: DecimationConfig | null,
  kept: KeptIndices[],
  inputTokens: number,
): ResultExtras['decimation'] {
  const summary = keptSummary(kept);
  return { config, kept: summary, applied: summary.some((k) => k.tokens < inputTokens) };
}
