// One Mamba-1 decode step in WASM SIMD, outside onnxruntime: weights, recurrent state and scratch live in this
// module's memory (laid out by mamba/wasm/engine.ts through alloc()), so a step takes a token id and, when asked,
// returns the greedy next id; logits are read from memory only when the caller wants them.
// Matmuls: fp32 (f32x4) or int8 weights with per-row scales (i16 activations, integer dot products). Conv, SiLU,
// softplus and the selective-scan update are fused per channel; exp/log are 4-lane polynomials (simd-math.ts).

// AssemblyScript (its own compiler; tsc and Biome skip this folder).
import { gemvF32, gemvI8, quantizeI16 } from './gemv';
import { expV, hsum, siluV, softplusV } from './simd-math';

/** 16-byte-aligned bytes from the bump heap (the memory grows; JS re-reads memory.buffer after each call). */
export function alloc(bytes: usize): usize {
  return heap.alloc(bytes);
}

// ---- the model, set once by configure() --------------------------------------------------------------------------
let dModel = 0;
let nLayer = 0;
let dInner = 0;
let dState = 0;
let dConv = 0;
let dtRank = 0;
let vocab = 0;
let int8 = false;
let eps: f32 = 0;
let layerTable: usize = 0; // nLayer × LAYER_SLOTS u32 pointers
let embedding: usize = 0; // [vocab, dModel] f32, or i8 with embeddingScale
let embeddingScale: usize = 0;
let normF: usize = 0;
let head: usize = 0; // [vocab, dModel] f32, or i8 with headScale
let headScale: usize = 0;
// scratch
let resid: usize = 0;
let normed: usize = 0;
let xz: usize = 0;
let xc: usize = 0;
let xdbl: usize = 0;
let delta: usize = 0;
let yBuf: usize = 0;
let outBuf: usize = 0;
let logits: usize = 0;
let xq: usize = 0;

/** Slots of a layer's row in the table (pointers; 0 = absent). */
export const LAYER_SLOTS = 16;
const NORM = 0;
const IN_PROJ = 1;
const IN_PROJ_SCALE = 2;
const CONV_W = 3;
const CONV_B = 4;
const X_PROJ = 5;
const X_PROJ_SCALE = 6;
const DT_W = 7;
const DT_B = 8;
const A = 9;
const D = 10;
const OUT_PROJ = 11;
const OUT_PROJ_SCALE = 12;
const CONV_STATE = 13; // [dInner, dConv], oldest first
const SSM_STATE = 14; // [dInner, dState]

/** dims: dModel, nLayer, dInner, dState, dConv, dtRank, vocab, int8; ptrs: layerTable, embedding, embeddingScale, normF, head, headScale. */
export function configure(dims: usize, epsilon: f32, ptrs: usize): void {
  dModel = load<i32>(dims);
  nLayer = load<i32>(dims, 4);
  dInner = load<i32>(dims, 8);
  dState = load<i32>(dims, 12);
  dConv = load<i32>(dims, 16);
  dtRank = load<i32>(dims, 20);
  vocab = load<i32>(dims, 24);
  int8 = load<i32>(dims, 28) != 0;
  eps = epsilon;
  layerTable = load<u32>(ptrs);
  embedding = load<u32>(ptrs, 4);
  embeddingScale = load<u32>(ptrs, 8);
  normF = load<u32>(ptrs, 12);
  head = load<u32>(ptrs, 16);
  headScale = load<u32>(ptrs, 20);
  const f = (n: i32): usize => heap.alloc(<usize>n << 2);
  resid = f(dModel);
  normed = f(dModel);
  xz = f(2 * dInner);
  xc = f(dInner);
  xdbl = f(dtRank + 2 * dState);
  delta = f(dInner);
  yBuf = f(dInner);
  outBuf = f(dModel);
  logits = f(vocab);
  xq = heap.alloc(<usize>max(dModel, dInner) << 1);
}

export function logitsPtr(): usize {
  return logits;
}

@inline
function slot(layer: i32, s: i32): usize {
  return <usize>load<u32>(layerTable + ((<usize>(layer * LAYER_SLOTS + s)) << 2));
}

function matvec(w: usize, scales: usize, x: usize, y: usize, rows: i32, k: i32): void {
  if (int8) gemvI8(w, scales, xq, quantizeI16(x, xq, k), y, rows, k);
  else gemvF32(w, x, y, rows, k);
}

function rmsNorm(x: usize, w: usize, out: usize): void {
  let acc = f32x4.splat(0);
  const d4 = dModel & ~3;
  for (let i = 0; i < d4; i += 4) {
    const v = v128.load(x + (<usize>i << 2));
    acc = f32x4.add(acc, f32x4.mul(v, v));
  }
  let sum = hsum(acc);
  for (let i = d4; i < dModel; i++) sum += load<f32>(x + (<usize>i << 2)) * load<f32>(x + (<usize>i << 2));
  const scale: f32 = 1 / Mathf.sqrt(sum / <f32>dModel + eps);
  for (let i = 0; i < dModel; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(x + o) * scale * load<f32>(w + o));
  }
}

/** In place over n floats (n a multiple of 4 is the fast path; the tail goes through one padded vector). */
function siluInPlace(p: usize, n: i32): void {
  for (let i = 0; i + 4 <= n; i += 4) v128.store(p + (<usize>i << 2), siluV(v128.load(p + (<usize>i << 2))));
  for (let i = n & ~3; i < n; i++) {
    const o = p + (<usize>i << 2);
    store<f32>(o, f32x4.extract_lane(siluV(f32x4.splat(load<f32>(o))), 0));
  }
}

function softplusBiasInPlace(p: usize, bias: usize, n: i32): void {
  for (let i = 0; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(p + o, softplusV(f32x4.add(v128.load(p + o), v128.load(bias + o))));
  }
  for (let i = n & ~3; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(p + o, f32x4.extract_lane(softplusV(f32x4.splat(load<f32>(p + o) + load<f32>(bias + o))), 0));
  }
}

/** Shift the conv window (oldest first), append x, convolve: xc = conv(x) (SiLU applied after). */
function convStep(layer: i32): void {
  const w = slot(layer, CONV_W);
  const b = slot(layer, CONV_B);
  const st = slot(layer, CONV_STATE);
  for (let c = 0; c < dInner; c++) {
    const row = st + ((<usize>(c * dConv)) << 2);
    const wr = w + ((<usize>(c * dConv)) << 2);
    let acc: f32 = b ? load<f32>(b + (<usize>c << 2)) : 0;
    for (let k = 0; k < dConv - 1; k++) {
      const v = load<f32>(row + (<usize>(k + 1) << 2));
      store<f32>(row + (<usize>k << 2), v);
      acc += load<f32>(wr + (<usize>k << 2)) * v;
    }
    const xin = load<f32>(xz + (<usize>c << 2));
    store<f32>(row + (<usize>(dConv - 1) << 2), xin);
    acc += load<f32>(wr + (<usize>(dConv - 1) << 2)) * xin;
    store<f32>(xc + (<usize>c << 2), acc);
  }
}

/** h = exp(Δ·A) ⊙ h + Δ·B·x; y = (C·h + D·x) ⊙ SiLU(z), four states per vector. */
function scanStep(layer: i32): void {
  const a = slot(layer, A);
  const dSkip = slot(layer, D);
  const h = slot(layer, SSM_STATE);
  const bv = xdbl + (<usize>dtRank << 2);
  const cv = bv + (<usize>dState << 2);
  const z = xz + (<usize>dInner << 2); // SiLU already applied
  const rowBytes = <usize>dState << 2;
  for (let ch = 0; ch < dInner; ch++) {
    const o = <usize>ch << 2;
    const dt = load<f32>(delta + o);
    const xv = load<f32>(xc + o);
    const dtv = f32x4.splat(dt);
    const dtx = f32x4.splat(dt * xv);
    const hr = h + <usize>ch * rowBytes;
    const ar = a + <usize>ch * rowBytes;
    let acc = f32x4.splat(0);
    for (let n = 0; n < dState; n += 4) {
      const no = <usize>n << 2;
      const dA = expV(f32x4.mul(dtv, v128.load(ar + no)));
      let hv = f32x4.add(f32x4.mul(dA, v128.load(hr + no)), f32x4.mul(dtx, v128.load(bv + no)));
      // A state with no input (x or B exactly 0) decays geometrically into denormals, which x86 multiplies ~100×
      // slower and WASM cannot flush: zero it below 1e-30, where it no longer moves any output.
      hv = v128.and(hv, f32x4.ge(f32x4.abs(hv), f32x4.splat(1e-30)));
      v128.store(hr + no, hv);
      acc = f32x4.add(acc, f32x4.mul(hv, v128.load(cv + no)));
    }
    store<f32>(yBuf + o, (hsum(acc) + load<f32>(dSkip + o) * xv) * load<f32>(z + o));
  }
}

function block(layer: i32): void {
  rmsNorm(resid, slot(layer, NORM), normed);
  matvec(slot(layer, IN_PROJ), slot(layer, IN_PROJ_SCALE), normed, xz, 2 * dInner, dModel);
  convStep(layer);
  siluInPlace(xc, dInner);
  siluInPlace(xz + (<usize>dInner << 2), dInner); // the gate z
  matvec(slot(layer, X_PROJ), slot(layer, X_PROJ_SCALE), xc, xdbl, dtRank + 2 * dState, dInner);
  gemvF32(slot(layer, DT_W), xdbl, delta, dInner, dtRank);
  softplusBiasInPlace(delta, slot(layer, DT_B), dInner);
  scanStep(layer);
  matvec(slot(layer, OUT_PROJ), slot(layer, OUT_PROJ_SCALE), yBuf, outBuf, dModel, dInner);
  for (let i = 0; i < dModel; i += 1) {
    const o = <usize>i << 2;
    store<f32>(resid + o, load<f32>(resid + o) + load<f32>(outBuf + o));
  }
}

/**
 * Advances the state by one token. withHead: 0 = no logits (prefill positions nobody asked for), 1 = logits in
 * memory, 2 = logits and the greedy next token (lowest id on ties) as the return value.
 */
export function step(token: i32, withHead: i32): i32 {
  if (int8) {
    const row = embedding + <usize>token * <usize>dModel;
    const s = load<f32>(embeddingScale + (<usize>token << 2));
    for (let i = 0; i < dModel; i++) store<f32>(resid + (<usize>i << 2), <f32>load<i8>(row + <usize>i) * s);
  } else {
    memory.copy(resid, embedding + ((<usize>token * <usize>dModel) << 2), <usize>dModel << 2);
  }
  for (let l = 0; l < nLayer; l++) block(l);
  if (withHead == 0) return -1;
  rmsNorm(resid, normF, normed);
  matvec(head, headScale, normed, logits, vocab, dModel);
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
