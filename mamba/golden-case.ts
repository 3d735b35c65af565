// Replaying one PyTorch golden fixture case (test/fixtures/<name>/, format in mamba/README.md) on an engine, the same
// way in the tests and in the CUDA device check: one prefill with the case's decimation and protected tail, logits at
// its positions and at the last token (where the greedy continuation starts), then as many greedy tokens as it has.
import type { DecimationConfig, ModelState, PrefillOptions, PrefillResult } from './engine.ts';
import { argmax } from './sampling.ts';

export interface GoldenCaseInput {
  ids: number[];
  protect: number;
  decimation: DecimationConfig | null;
  positions: number[];
  greedy: number[];
}

/** The part of an engine a replay uses (MambaEngine's single-sequence calls). */
export interface GoldenEngine {
  prefill(ids: ArrayLike<number>, options?: PrefillOptions): Promise<PrefillResult>;
  step(token: number, state: ModelState): Promise<{ logits: Float32Array; state: ModelState }>;
}

export interface GoldenReplay {
  /** logits[row] is the case's positions[row] (then the last token's row, when it is not among them). */
  result: PrefillResult;
  greedy: number[];
}

export async function replayGoldenCase(engine: GoldenEngine, c: GoldenCaseInput): Promise<GoldenReplay> {
  const last = c.ids.length - 1;
  const positions = c.positions.includes(last) ? c.positions : [...c.positions, last];
  const result = await engine.prefill(c.ids, {
    decimation: c.decimation,
    protect: c.protect,
    logitPositions: positions,
  });
  const from = result.logits[positions.indexOf(last)]!;
  return { result, greedy: await greedyTokens(engine, from, result.state, c.greedy.length) };
}

/** `n` greedy tokens: the first from `logits`, each next one from a step on the previous; `seen` sees every logits row. */
export async function greedyTokens(
  engine: Pick<GoldenEngine, 'step'>,
  logits: Float32Array,
  state: ModelState,
  n: number,
  seen?: (logits: Float32Array) => void,
): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    out.push(argmax(logits));
    seen?.(logits);
    if (out.length < n) ({ logits, state } = await engine.step(out[out.length - 1]!, state));
  }
  return out;
}
