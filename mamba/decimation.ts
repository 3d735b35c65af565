// DeciMamba's "max_p" decimation as pure functions (arXiv 2406.14528; official get_non_decimated_indices).
// Every engine uses these, so the reference, ONNX and CUDA paths pick exactly the same tokens.
import type { DecimationConfig } from './engine.ts';

export class DecimationError extends Error {
  override name = 'DecimationError';
}

/** The paper's setting ([12] of 24 layers, β 0.5, L_base 2000, min 20) scaled to a model's depth. */
export function defaultDecimation(nLayer: number): DecimationConfig {
  return { layers: [Math.floor(nLayer / 2)], beta: 0.5, lBase: 2000, minSeqLen: 20 };
}

/** Refuses configs that would silently do nothing or something odd (e.g. layer 12 on a 4-layer model). */
export function validateDecimation(cfg: DecimationConfig, nLayer: number): void {
  if (cfg.layers.length === 0) throw new DecimationError('decimation: layers is empty');
  cfg.layers.forEach((layer, i) => {
    if (!Number.isInteger(layer) || layer < 0 || layer >= nLayer) {
      throw new DecimationError(`decimation: layer ${layer} is not a layer of this ${nLayer}-layer model`);
    }
    if (i > 0 && layer <= cfg.layers[i - 1]!)
      throw new DecimationError('decimation: layers must be strictly ascending');
  });
  if (!(cfg.beta > 0 && cfg.beta <= 1))
    throw new DecimationError(`decimation: beta must be in (0, 1], got ${cfg.beta}`);
  if (!(cfg.lBase >= 1)) throw new DecimationError(`decimation: lBase must be ≥ 1, got ${cfg.lBase}`);
  if (!(Number.isInteger(cfg.minSeqLen) && cfg.minSeqLen >= 0)) {
    throw new DecimationError(`decimation: minSeqLen must be an integer ≥ 0, got ${cfg.minSeqLen}`);
  }
}

/**
 * A length-adaptive budget: [prompt tokens, L_base] points, ascending in length. One fixed L_base cannot serve every
 * length on this model (a small one loses needles past 64K, a large one keeps too much at 4–16K), so the budget is
 * read off the validation sweep (bench/quality/choose_policy.py) and interpolated between the swept lengths.
 */
export type LengthBudgets = ReadonlyArray<readonly [number, number]>;

export function validateLengthBudgets(points: LengthBudgets): void {
  if (points.length === 0) throw new DecimationError('decimation: lBaseByLength is empty');
  points.forEach(([length, lBase], i) => {
    if (!(Number.isInteger(length) && length >= 1 && Number.isInteger(lBase) && lBase >= 1)) {
      throw new DecimationError(`decimation: lBaseByLength[${i}] must be two integers ≥ 1, got [${length}, ${lBase}]`);
    }
    if (i > 0 && length <= points[i - 1]![0])
      throw new DecimationError('decimation: lBaseByLength lengths must be strictly ascending');
  });
}

/** L_base for a prompt of `length` tokens: log-log interpolation between the points, the end values outside them. */
export function lBaseForLength(points: LengthBudgets, length: number): number {
  const first = points[0]!;
  const last = points[points.length - 1]!;
  if (length <= first[0]) return first[1];
  if (length >= last[0]) return last[1];
  const i = points.findIndex(([l]) => l >= length);
  const [l0, b0] = points[i - 1]!;
  const [l1, b1] = points[i]!;
  const t = Math.log(length / l0) / Math.log(l1 / l0);
  return Math.round(Math.exp(Math.log(b0) + t * Math.log(b1 / b0)));
}

/** The config a prompt of `length` tokens runs with: the fixed form, or its L_base taken from the length budgets. */
export function decimationForLength(
  fixed: DecimationConfig,
  budgets: LengthBudgets | undefined,
  length: number,
): DecimationConfig {
  return budgets ? { ...fixed, lBase: lBaseForLength(budgets, length) } : fixed;
}

/** Position s of `layer` in cfg.layers, or -1 when the layer does not decimate. */
export function decimationSlot(cfg: DecimationConfig | null | undefined, layer: number): number {
  return cfg ? cfg.layers.indexOf(layer) : -1;
}

/** The protected tail length clamped to [0, seqLen] (a prompt may be shorter than `protect`). */
export function clampProtect(protect: number, seqLen: number): number {
  return Math.max(0, Math.min(Math.floor(protect), seqLen));
}

/**
 * Tokens kept at the s-th decimating layer out of `contextLen` scored ones:
 * K = int(max(min(Lc, L_base·β^s), min_seq_len)), capped at Lc (the official code would fail in topk above Lc).
 */
export function decimationK(s: number, contextLen: number, cfg: DecimationConfig): number {
  if (contextLen <= 0) return 0;
  const budget = cfg.lBase * cfg.beta ** s;
  const k = Math.floor(Math.max(Math.min(contextLen, budget), cfg.minSeqLen));
  return Math.min(k, contextLen);
}

/** ‖softplus(dt_t + bias)‖₂ over channels for the first `contextLen` rows of Δ ([L, dInner], row-major, softplus already applied). */
export function deltaScores(delta: Float32Array, dInner: number, contextLen: number): Float64Array {
  const scores = new Float64Array(contextLen);
  for (let t = 0; t < contextLen; t++) {
    let sumSq = 0;
    const row = t * dInner;
    for (let c = 0; c < dInner; c++) sumSq += delta[row + c]! * delta[row + c]!;
    scores[t] = Math.sqrt(sumSq);
  }
  return scores;
}

/** Indices of the k largest scores, ties to the earlier index (stable sort on −score), returned ascending. NaN ranks last. */
export function selectKept(scores: Float64Array | Float32Array, k: number): Int32Array {
  const n = scores.length;
  const kk = Math.max(0, Math.min(k, n));
  const order = Array.from({ length: n }, (_, i) => i);
  const key = (i: number): number => (Number.isNaN(scores[i]!) ? -Infinity : scores[i]!);
  order.sort((a, b) => key(b) - key(a) || a - b);
  return Int32Array.from(order.slice(0, kk)).sort();
}

/**
 * The rows that survive the s-th decimating layer for a sequence of `seqLen` rows at that layer, or null when nothing is
 * dropped (Lc ≤ 0 or K = Lc). `scoresFor(contextLen)` is only called when scores are needed.
 */
export function keptRows(
  seqLen: number,
  protect: number,
  s: number,
  cfg: DecimationConfig,
  scoresFor: (contextLen: number) => Float64Array | Float32Array,
): Int32Array | null {
  const contextLen = seqLen - clampProtect(protect, seqLen);
  if (contextLen <= 0) return null;
  const k = decimationK(s, contextLen, cfg);
  if (k >= contextLen) return null;
  const top = selectKept(scoresFor(contextLen), k);
  const rows = new Int32Array(k + (seqLen - contextLen));
  rows.set(top);
  for (let t = contextLen, j = k; t < seqLen; t++, j++) rows[j] = t; // the protected tail, whole and in order
  return rows;
}

/**
 * The length plan of one prompt: how many context tokens each layer keeps. K depends only on lengths, never on
 * values, so every engine decides it before running (ONNX feeds it to the graph, CUDA sizes its row groups from it).
 */
export interface DecimationPlan {
  /** Per layer: context tokens kept, or −1 when the layer passes every token through. */
  keep: number[];
  /** Per layer: the scored context length Lc where the layer drops tokens, else 0. */
  contextLen: number[];
  /** Sequence length after the last layer. */
  finalLength: number;
  /** Layers that dropped tokens: they report kept indices (as the reference, train/ and the fixtures do). */
  reported: number[];
}

export function planDecimation(
  length: number,
  protect: number,
  nLayer: number,
  dec: DecimationConfig | null,
): DecimationPlan {
  const keep = new Array<number>(nLayer).fill(-1);
  const contextLen = new Array<number>(nLayer).fill(0);
  const reported: number[] = [];
  let len = length;
  for (let layer = 0; layer < nLayer; layer++) {
    const s = decimationSlot(dec, layer);
    if (s < 0) continue;
    const tail = clampProtect(protect, len);
    const ctx = len - tail;
    if (ctx <= 0) continue;
    const k = decimationK(s, ctx, dec!);
    if (k < ctx) {
      keep[layer] = k;
      contextLen[layer] = ctx;
      len = k + tail;
      reported.push(layer);
    }
  }
  return { keep, contextLen, finalLength: len, reported };
}

/** Maps rows kept at this layer back to original positions: positions[rows[j]]. */
export function composeIndices(positions: Int32Array, rows: Int32Array): Int32Array {
  const out = new Int32Array(rows.length);
  for (let j = 0; j < rows.length; j++) out[j] = positions[rows[j]!]!;
  return out;
}

/** 0, 1, ..., n-1 */
export function identityIndices(n: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}
