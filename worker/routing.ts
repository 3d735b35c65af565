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
  /** Extra prefills of the prompt (echo with logprobs scores the prompt once more). */
  extraPrefills?: number;
  /** DeciMamba on: the prefill runs unchunked, so its memory grows with the prompt (see EDGE_MAX_DECIMATION_TOKENS). */
  decimated?: boolean;
}

export function edgeMaxPromptTokens(config: EdgeConfig, model: EdgeModel, decimated = false): number {
  const max = Math.min(config.edge.maxPromptTokens ?? model.defaults.trainLen, model.defaults.trainLen, model.manifest.maxSeqLen);
  return decimated ? Math.min(max, config.edge.maxDecimationTokens) : max;
}

export function estimateEdgeMs(config: EdgeConfig, work: Work): number {
  const prefill = (work.promptTokens * (1 + (work.extraPrefills ?? 0))) / config.edge.prefillTokensPerS;
  const decode = work.newTokens / config.edge.decodeTokensPerS;
  return Math.round((prefill + decode) * 1000);
}

export function place(config: EdgeConfig, model: EdgeModel, work: Work): Placement {
  const estimatedMs = estimateEdgeMs(config, work);
  const maxTokens = edgeMaxPromptTokens(config, model);
  if (work.promptTokens > maxTokens) {
    return { where: 'runner', estimatedMs, reason: `${work.promptTokens} prompt tokens > ${maxTokens} at the edge` };
  }
  const maxDecimated = edgeMaxPromptTokens(config, model, true);
  if (work.decimated && work.promptTokens > maxDecimated) {
    return { where: 'runner', estimatedMs, reason: `${work.promptTokens} prompt tokens > ${maxDecimated} with DeciMamba at the edge` };
  }
  if (estimatedMs > config.edge.cpuBudgetMs) {
    return { where: 'runner', estimatedMs, reason: `estimated ${estimatedMs} ms CPU > edge budget ${config.edge.cpuBudgetMs} ms` };
  }
  return { where: 'edge', estimatedMs, reason: `${work.promptTokens} prompt tokens, estimated ${estimatedMs} ms CPU` };
}
