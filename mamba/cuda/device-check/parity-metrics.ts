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

/** bf16 rounds Δ by ~0.4%: tokens whose reference ‖Δ‖ lies this close (as a share) to the K-th kept score may swap. */
export const BF16_SCORE_TIE = 0.005;

/** A decimating layer's reference scores, by the original position of each scored context token. */
export interface LayerScores {
  layer: number;
  positions: ArrayLike<number>;
  scores: ArrayLike<number>;
}

/**
 * Whether `got` kept the reference's tokens (`want`, scored `scores` by the reference) up to near-ties, layer by layer:
 * until a layer's sets differ, every token in one set and not the other must score within `tie` of the layer's K-th
 * kept score. After that the later layers' inputs differ (a swapped token changes the conv windows and the scan after
 * it), so there only the count is bounded: no more of the reference's tokens missing than tokens within `tie` of the
 * K-th score. A token the other side already dropped at an earlier layer is not counted again. (A fixed share of
 * agreement failed random-weight fixtures, whose scores are so dense that 35% of a layer's tokens lie within 0.5% of
 * the K-th: bf16 cannot decide those, and a fixed share cannot tell that from a wrong choice.)
 */
export function keptUpToTies(
  got: { layer: number; indices: ArrayLike<number> }[],
  want: { layer: number; indices: ArrayLike<number> }[],
  scores: LayerScores[],
  tie = BF16_SCORE_TIE,
): { ok: boolean; missing: number; worstGap: number } {
  if (got.length !== want.length || scores.length !== want.length) return { ok: false, missing: 0, worstGap: Infinity };
  let ok = true;
  let missing = 0;
  let worstGap = 0;
  let upstream = false;
  const droppedByGot = new Set<number>();
  for (const [i, w] of want.entries()) {
    const g = got[i]!;
    const sc = scores[i]!;
    if (g.layer !== w.layer || sc.layer !== w.layer) return { ok: false, missing, worstGap: Infinity };
    const score = new Map(Array.from(sc.positions, (p, j) => [p, sc.scores[j]!]));
    const wantSet = new Set(Array.from(w.indices));
    const gotSet = new Set(Array.from(g.indices));
    let boundary = Infinity;
    for (const p of wantSet) if (score.has(p)) boundary = Math.min(boundary, score.get(p)!);
    const gap = (p: number) => Math.abs(score.get(p)! - boundary) / boundary;
    // in one set only, and scored here by the reference (not dropped by either side before)
    const onlyWant = [...wantSet].filter((p) => !gotSet.has(p) && score.has(p) && !droppedByGot.has(p));
    const onlyGot = [...gotSet].filter((p) => !wantSet.has(p) && score.has(p));
    const gaps = [...onlyWant, ...onlyGot].map(gap);
    worstGap = Math.max(worstGap, ...gaps);
    missing += onlyWant.length;
    if (!upstream) ok &&= gaps.every((x) => x <= tie);
    else ok &&= onlyWant.length <= Array.from(sc.scores).filter((v) => Math.abs(v - boundary) <= tie * boundary).length;
    for (const p of wantSet) if (!gotSet.has(p)) droppedByGot.add(p);
    upstream ||= wantSet.size !== gotSet.size || [...wantSet].some((p) => !gotSet.has(p));
  }
  return { ok, missing, worstGap };
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
