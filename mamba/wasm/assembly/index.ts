// Mamba-1 in WASM SIMD, outside onnxruntime: prefill and the decode step run the same block (block.ts) over rows of
// the residual stream, a whole layer at a time. Weights, the recurrent state and scratch live in this module's memory
// (laid out by mamba/wasm/engine.ts through alloc()); the prompt's residual rows [rows, dModel] are the only buffer
// that grows with the prompt. A step takes a token id and, when asked, returns the greedy next id; logits are read
// from memory only when the caller wants them.
// Matmuls: fp32, or int8 weights with per-row scales (i16 activations, integer dot products); exp/log are 4-lane
// polynomials (simd-math.ts).

// AssemblyScript (its own compiler; tsc and Biome skip this folder).
import { rmsNormRows, runLayer } from './block';
import {
  BLOCK,
  dModel,
  embedding,
  embeddingScale,
  head,
  headScale,
  int8,
  logits,
  nLayer,
  normed,
  normF,
  prepareInput,
  project,
  stepResid,
  stepRow,
  vocab,
} from './model';

export { scoreLayer, runLayer } from './block';
export { alloc, configure, LAYER_SLOTS, BLOCK } from './model';

// The prompt's buffers, grown (never shrunk) to the longest prompt seen.
let capacity = 0;
let resid: usize = 0; // [capacity, dModel] f32
let ids: usize = 0; // [capacity] i32: token ids in; kept rows for runLayer
let scores: usize = 0; // [capacity] f64

/** Makes room for a prompt of `rows` tokens; the pointers below may change. */
export function reserve(rows: i32): void {
  if (rows <= capacity) return;
  capacity = (rows + 1023) & ~1023;
  resid = heap.alloc(<usize>(capacity * dModel) << 2);
  ids = heap.alloc(<usize>capacity << 2);
  scores = heap.alloc(<usize>capacity << 3);
}

export function residPtr(): usize {
  return resid;
}

export function idsPtr(): usize {
  return ids;
}

export function scoresPtr(): usize {
  return scores;
}

export function logitsPtr(): usize {
  return logits;
}

function embedInto(token: i32, row: usize): void {
  if (int8) {
    const src = embedding + ((<usize>token * <usize>dModel) << 1);
    const s = load<f32>(embeddingScale + (<usize>token << 2));
    for (let i = 0; i < dModel; i++) store<f32>(row + (<usize>i << 2), <f32>load<i16>(src + (<usize>i << 1)) * s);
  } else {
    memory.copy(row, embedding + ((<usize>token * <usize>dModel) << 2), <usize>dModel << 2);
  }
}

/** The residual rows of the n token ids at idsPtr(). */
export function embed(n: i32): void {
  for (let t = 0; t < n; t++) embedInto(load<i32>(ids + (<usize>t << 2)), resid + (<usize>(t * dModel) << 2));
}

/** Logits of n ≤ BLOCK residual rows (their row numbers at `rows`, i32) into logitsPtr(), [n, vocab]. */
function headRowsOf(x: usize, rows: usize, n: i32): void {
  const rowBytes = <usize>dModel << 2;
  for (let i = 0; i < n; i++)
    rmsNormRows(x + <usize>load<i32>(rows + (<usize>i << 2)) * rowBytes, 1, normF, normed + <usize>i * rowBytes);
  prepareInput(normed, dModel, dModel, n);
  project(head, headScale, logits, vocab, vocab, false);
}

/** headRowsOf for the prompt's rows: the row numbers are at idsPtr() (n ≤ BLOCK). */
export function headRows(n: i32): void {
  headRowsOf(resid, ids, min(n, BLOCK));
}

/**
 * Advances the state by one token. withHead: 0 = no logits, 1 = logits in memory, 2 = logits and the greedy next
 * token (lowest id on ties) as the return value.
 */
export function step(token: i32, withHead: i32): i32 {
  embedInto(token, stepResid);
  for (let l = 0; l < nLayer; l++) runLayer(l, stepResid, 1, 0, 0);
  if (withHead == 0) return -1;
  store<i32>(stepRow, 0);
  headRowsOf(stepResid, stepRow, 1);
  if (withHead == 1) return -1;
  let best = 0;
  let bestV = load<f32>(logits);
  for (let i = 1; i < vocab; i++) {
    const v = load<f32>(logits + (<usize>i << 2));
    if (v > bestV) {
      bestV = v;
      best = i;
    }
  }
  return best;
}
