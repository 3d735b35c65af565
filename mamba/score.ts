// Per-token log-probabilities and perplexity of a span of a token sequence, on any MambaEngine.
import type { DecimationConfig, KeptIndices, MambaEngine } from './engine.ts';
import { logProbOf } from './sampling.ts';

export interface ScoreOptions {
  /** First scored token (≥ 1: token 0 has no prediction). Default 1. */
  start?: number;
  /** One past the last scored token. Default ids.length. */
  end?: number;
  decimation?: DecimationConfig | null;
}

export interface ScoreResult {
  start: number;
  end: number;
  /** The scored tokens ids[start..end). */
  tokens: number[];
  /** log p(ids[t] | ids[<t]) for t in [start, end), natural log. */
  logprobs: number[];
  /** −Σ logprobs */
  nll: number;
  meanNll: number;
  perplexity: number;
  kept: KeptIndices[];
}

export async function scoreSpan(
  engine: MambaEngine,
  ids: ArrayLike<number>,
  options: ScoreOptions = {},
): Promise<ScoreResult> {
  const start = options.start ?? 1;
  const end = options.end ?? ids.length;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 1 || end > ids.length || end <= start) {
    throw new RangeError(`score: span [${start}, ${end}) must satisfy 1 ≤ start < end ≤ ${ids.length}`);
  }
  const input = Array.from(ids).slice(0, end); // later tokens cannot affect these predictions
  // ids[t] is predicted by the logits at t−1; with decimation, protect keeps positions start−1..end−1 (the span + 1).
  const positions = Array.from({ length: end - start }, (_, j) => start - 1 + j);
  const result = await engine.prefill(input, {
    decimation: options.decimation ?? null,
    protect: end - start + 1,
    logitPositions: positions,
  });
  const tokens = input.slice(start, end);
  const logprobs = tokens.map((token, j) => logProbOf(result.logits[j]!, token));
  const nll = -logprobs.reduce((a, b) => a + b, 0);
  const meanNll = nll / tokens.length;
  return { start, end, tokens, logprobs, nll, meanNll, perplexity: Math.exp(meanNll), kept: result.kept };
}
