// Per-token log-probabilities and perplexity of a span of a token sequence, on any MambaEngine, for one sequence
// (scoreSpan) or many in one batched prefill (scoreBatch).
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

export interface ScoreJob {
  ids: ArrayLike<number>;
  options?: ScoreOptions;
}

export async function scoreSpan(
  engine: MambaEngine,
  ids: ArrayLike<number>,
  options: ScoreOptions = {},
): Promise<ScoreResult> {
  const [result] = await scoreBatch(engine, [{ ids, options }]);
  if (result instanceof Error) throw result;
  return result!;
}

/** Scores every job in one batched prefill; a job that cannot run gets its Error in its slot, the others run. */
export async function scoreBatch(engine: MambaEngine, jobs: ScoreJob[]): Promise<Array<ScoreResult | Error>> {
  const results: Array<ScoreResult | Error | null> = jobs.map(() => null);
  const spans = jobs.map(({ ids, options = {} }, i) => {
    const start = options.start ?? 1;
    const end = options.end ?? ids.length;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 1 || end > ids.length || end <= start) {
      results[i] = new RangeError(`score: span [${start}, ${end}) must satisfy 1 ≤ start < end ≤ ${ids.length}`);
    }
    return { start, end, input: Array.from(ids).slice(0, end) }; // later tokens cannot affect these predictions
  });
  const todo = jobs.flatMap((job, i) => (results[i] ? [] : [{ i, job, ...spans[i]! }]));
  const prefills = await engine.prefillBatchSettled(
    todo.map(({ job, start, end, input }) => ({
      ids: input,
      // ids[t] is predicted by the logits at t−1; with decimation, protect keeps positions start−1..end−1 (span + 1).
      options: {
        decimation: job.options?.decimation ?? null,
        protect: end - start + 1,
        logitPositions: Array.from({ length: end - start }, (_, j) => start - 1 + j),
      },
    })),
  );
  todo.forEach(({ i, start, end, input }, j) => {
    const prefill = prefills[j]!;
    if (prefill instanceof Error) {
      results[i] = prefill;
      return;
    }
    const tokens = input.slice(start, end);
    const logprobs = tokens.map((token, q) => logProbOf(prefill.logits[q]!, token));
    const nll = -logprobs.reduce((a, b) => a + b, 0);
    const meanNll = nll / tokens.length;
    results[i] = { start, end, tokens, logprobs, nll, meanNll, perplexity: Math.exp(meanNll), kept: prefill.kept };
  });
  return results as Array<ScoreResult | Error>;
}
