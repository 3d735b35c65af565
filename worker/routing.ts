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
}

export function edgeMaxPromptTokens(config: EdgeConfig, model: EdgeModel): number {
  return Math.min(config.edge.maxPromptTokens ?? model.defaults.trainLen, model.defaults.trainLen, model.manifest.maxSeqLen);
}

export function estimateEdgeMs(config: EdgeConfig, work: Work): number {
  const prefill = (work.promptTokens * (1 + (work.extraPrefills ?? 0))) / config.edge.prefillTokensPerS;
  const decode = work.newTokens / config.edge.decodeTokensPerS;
  return Math.round((prefill + decode) * 1000);
}

export function place(config: EdgeConfig, model: EdgeModel, work: Work): Placement {
  const maxTokens = edgeMaxPromptTokens(config, model);
  const estimatedMs = estimateEdgeMs(config, work);
  if (work.promptTokens > maxTokens) {
    return { where: 'runner', estimatedMs, reason: `${work.promptTokens} prompt tokens > ${maxTokens} at the edge` };
  }
  if (estimatedMs > config.edge.cpuBudgetMs) {
    return { where: 'runner', estimatedMs, reason: `estimated ${estimatedMs} ms CPU > edge budget ${config.edge.cpuBudgetMs} ms` };
  }
  return { where: 'edge', estimatedMs, reason: `${work.promptTokens} prompt tokens, estimated ${estimatedMs} ms CPU` };
}
