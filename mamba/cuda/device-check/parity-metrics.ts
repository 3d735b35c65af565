// Comparison measures and tolerances shared by the whole-model parity checks (parity-golden.ts,
// parity-reference.ts) and the scan comparison: logit and state distances, kept-index agreement, greedy margins
// (the greedy tokens themselves: mamba/golden-case.ts).
import type { ModelState, PrefillResult } from '../../engine.ts';

/** Relative tolerance the bf16 path is held to: max |Δlogit| ≤ 5% of the largest |logit| (bf16 keeps 8 mantissa bits). */
export const BF16_LOGIT_TOL = 0.05;
/** bf16 rounds ‖Δ_t‖ by ~0.4%, so tokens whose scores tie at the K-th place within that may swap; the rest must agree. */
export const BF16_KEPT_OVERLAP = 0.98;

export function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++)
    m = Math.max(m, Math.abs(a[i]! - b[i]!) || (Number.isNaN(a[i]! - b[i]!) ? Infinity : 0));
  return m;
}

export function maxStateDiff(a: ModelState, b: ModelState): number {
  return Math.max(...a.map((s, i) => Math.max(maxAbs(s.conv, b[i]!.conv), maxAbs(s.ssm, b[i]!.ssm))));
}

export function keptEqual(a: PrefillResult['kept'], b: { layer: number; indices: ArrayLike<number> }[]): boolean {
  return (
    JSON.stringify(a.map((k) => [k.layer, Array.from(k.indices)])) ===
    JSON.stringify(b.map((k) => [k.layer, Array.from(k.indices)]))
  );
}

/** Smallest share of one run's kept tokens that the other also kept, over the decimating layers (1 = identical). */
export function keptOverlap(
  a: { layer: number; indices: ArrayLike<number> }[],
  b: { layer: number; indices: ArrayLike<number> }[],
): number {
  if (a.length !== b.length) return 0;
  let min = 1;
  for (const [i, k] of a.entries()) {
    if (k.layer !== b[i]!.layer) return 0;
    const other = new Set(Array.from(b[i]!.indices));
    const n = Math.max(k.indices.length, other.size);
    min = Math.min(min, n === 0 ? 1 : Array.from(k.indices).filter((x) => other.has(x)).length / n);
  }
  return min;
}

export function largest(rows: Float32Array[]): number {
  let m = 0;
  for (const r of rows) for (const v of r) m = Math.max(m, Math.abs(v));
  return m;
}

/** Logit gap between the best and the second-best token: how close a greedy choice was to flipping. */
export function topTwoMargin(logits: Float32Array): number {
  let a = -Infinity,
    b = -Infinity;
  for (const v of logits) {
    if (v > a) [a, b] = [v, a];
    else if (v > b) b = v;
  }
  return a - b;
}
