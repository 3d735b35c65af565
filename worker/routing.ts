// Where a request runs. Tokens are counted first; a prompt runs in the Worker when it is no longer than the model's
// training length (and EDGE_MAX_PROMPT_TOKENS) and its estimated CPU time fits EDGE_CPU_BUDGET_MS. The estimate uses
// the edge engine's measured prefill and decode throughput (bench/edge-bench.ts); everything else becomes a job.
import type { EdgeConfig } from './config.ts';
import type { EdgeModel } from './model/edge-model.ts';

export type Placement =
  | { where: 'edge'; estimatedMs: number; reason: string }
  | { where: 'runner'; estimatedMs: number; reason: string };

export interface Work {
  promptTokens: number;
  /** Tokens to generate (0 for scoring). */
  newTokens: number;
  /** Tokens run through a plain prefill [promptTokens]. */
  prefilledTokens?: number;
  /**
   * Tokens scored with every position's log-probabilities (echo + logprobs scores the prompt once more; /v1/score
   * scores all of it), which runs well below the prefill rate (EDGE_SCORE_TOKENS_PER_S).
   */
  scoredTokens?: number;
  /** DeciMamba on: the prefill holds the whole prompt, so its memory grows with it (see EDGE_MAX_DECIMATION_TOKENS). */
  decimated?: boolean;
}

export function edgeMaxPromptTokens(config: EdgeConfig, model: EdgeModel, decimated = false): number {
  const max = Math.min(
    config.edge.maxPromptTokens ?? model.defaults.trainLen,
    model.defaults.trainLen,
    model.manifest.maxSeqLen,
  );
  return decimated ? Math.min(max, config.edge.maxDecimationTokens ?? max) : max;
}

export function estimateEdgeMs(config: EdgeConfig, work: Work): number {
  const prefill = (work.prefilledTokens ?? work.promptTokens) / config.edge.prefillTokensPerS;
  const score = (work.scoredTokens ?? 0) / config.edge.scoreTokensPerS;
  const decode = work.newTokens / config.edge.decodeTokensPerS;
  return Math.round((prefill + score + decode) * 1000);
}

export function place(config: EdgeConfig, model: EdgeModel, work: Work): Placement {
  const estimatedMs = estimateEdgeMs(config, work);
  const maxTokens = edgeMaxPromptTokens(config, model);
  if (work.promptTokens > maxTokens) {
    return { where: 'runner', estimatedMs, reason: `${work.promptTokens} prompt tokens > ${maxTokens} at the edge` };
  }
  const maxDecimated = edgeMaxPromptTokens(config, model, true);
  if (work.decimated && work.promptTokens > maxDecimated) {
    return {
      where: 'runner',
      estimatedMs,
      reason: `${work.promptTokens} prompt tokens > ${maxDecimated} with DeciMamba at the edge`,
    };
  }
  if (estimatedMs > config.edge.cpuBudgetMs) {
    return {
      where: 'runner',
      estimatedMs,
      reason: `estimated ${estimatedMs} ms CPU > edge budget ${config.edge.cpuBudgetMs} ms`,
    };
  }
  return { where: 'edge', estimatedMs, reason: `${work.promptTokens} prompt tokens, estimated ${estimatedMs} ms CPU` };
}
