// Choosing the next token from logits: greedy, temperature, top-k, top-p. Pure, so it is tested on hand-built logits.
import type { Rng } from './rng.ts';

export interface SamplingParams {
  /** 0 (default) = greedy. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p; 1 = off. */
  topP?: number;
}

/** Index of the largest logit; ties go to the lower id (as torch.argmax and the golden fixtures do). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

export function isGreedy(params: SamplingParams): boolean {
  return !(params.temperature && params.temperature > 0) || params.topK === 1;
}

/**
 * The candidate tokens and their renormalised probabilities after temperature, top-k then top-p (HF's order),
 * most likely first (ties: lower id first).
 */
export function candidateDistribution(
  logits: ArrayLike<number>,
  params: SamplingParams,
): { ids: number[]; probs: number[] } {
  const temperature = params.temperature && params.temperature > 0 ? params.temperature : 1;
  const ids = Array.from({ length: logits.length }, (_, i) => i).filter((i) => !Number.isNaN(logits[i]!));
  ids.sort((a, b) => logits[b]! - logits[a]! || a - b);
  const topK = params.topK && params.topK > 0 ? Math.min(params.topK, ids.length) : ids.length;
  const kept = ids.slice(0, topK);

  const max = logits[kept[0]!]! / temperature;
  let probs = kept.map((i) => Math.exp(logits[i]! / temperature - max));
  let total = probs.reduce((a, b) => a + b, 0);
  probs = probs.map((p) => p / total);

  const topP = params.topP ?? 1;
  if (topP < 1) {
    let cumulative = 0;
    let keep = 0;
    while (keep < probs.length && cumulative < topP) cumulative += probs[keep++]!;
    kept.length = Math.max(1, keep);
    probs.length = kept.length;
    total = probs.reduce((a, b) => a + b, 0);
    probs = probs.map((p) => p / total);
  }
  return { ids: kept, probs };
}

export function sampleToken(logits: ArrayLike<number>, params: SamplingParams, rng: Rng): number {
  if (isGreedy(params)) return argmax(logits);
  const { ids, probs } = candidateDistribution(logits, params);
  let u = rng.next();
  for (let j = 0; j < ids.length; j++) {
    u -= probs[j]!;
    if (u < 0) return ids[j]!;
  }
  return ids[ids.length - 1]!; // rounding left a sliver of mass
}

/** log softmax(logits), in f64 (for comparing whole distributions: KL between engines). */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const norm = max + Math.log(sum);
  return Float64Array.from({ length: logits.length }, (_, i) => logits[i]! - norm);
}

/** log softmax(logits)[token], in f64. */
export function logProbOf(logits: ArrayLike<number>, token: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return logits[token]! - max - Math.log(sum);
}
