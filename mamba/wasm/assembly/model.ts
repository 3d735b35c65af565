// The model this module instance runs, set once by configure(): sizes, where each layer's weights and state live (a
// table of pointers laid out by mamba/wasm/engine.ts), and the scratch one block of tokens works in.

// AssemblyScript (its own compiler; tsc and Biome skip this folder).
import { gemm, quantizeI16 } from './gemm';

/** Tokens per block: a weight vector loaded by a matmul serves all of them (the decode step is a block of one). */
export const BLOCK = 32;

export let dModel = 0;
export let nLayer = 0;
export let dInner = 0;
export let dState = 0;
export let dConv = 0;
export let dtRank = 0;
export let vocab = 0;
export let int8 = false;
export let eps: f32 = 0;
/** x_proj's output width: dt (dtRank), B (dState), C (dState). */
export let xdblWidth = 0;
export let layerTable: usize = 0; // nLayer × LAYER_SLOTS u32 pointers
export let embedding: usize = 0; // [vocab, dModel] f32, or int8 values as i16 with embeddingScale
export let embeddingScale: usize = 0;
export let normF: usize = 0;
export let head: usize = 0; // [vocab, dModel] f32, or int8 values as i16 with headScale
export let headScale: usize = 0;

// Scratch for one block (rows = BLOCK unless said otherwise).
export let normed: usize = 0; // [BLOCK, dModel]
export let convWindow: usize = 0; // [dConv + BLOCK, dInner]: the last dConv pre-conv inputs, then the block's
export let xc: usize = 0; // [BLOCK, dInner] conv + SiLU
export let zGate: usize = 0; // [BLOCK, dInner] SiLU(z)
export let xdbl: usize = 0; // [BLOCK, xdblWidth]
export let delta: usize = 0; // [BLOCK, dInner]
export let yBuf: usize = 0; // [BLOCK, dInner]
export let accBuf: usize = 0; // [BLOCK, 4] v128: the scan's C·h of four channels before their horizontal sums
export let xq: usize = 0; // [BLOCK, max(dModel, dInner)] i16: activations quantized for the int8 matmuls
export let xqScale: usize = 0; // [BLOCK] f32
export let logits: usize = 0; // [BLOCK, vocab]
export let stepResid: usize = 0; // [1, dModel]: the decode step's residual stream
export let stepRow: usize = 0; // [1] i32: row 0, for the head

/** Slots of a layer's row in the table (pointers; 0 = absent). */
export const LAYER_SLOTS = 16;
export const NORM = 0;
export const IN_PROJ = 1; // [2·dInner, dModel]: x rows then z rows
export const IN_PROJ_SCALE = 2;
export const CONV_WT = 3; // [dConv, dInner]: the conv weights transposed, so a vector holds four channels
export const CONV_B = 4;
export const X_PROJ = 5;
export const X_PROJ_SCALE = 6;
export const DT_W = 7;
export const DT_B = 8;
export const A = 9; // −exp(A_log), [dInner, dState]
export const D = 10;
export const OUT_PROJ = 11;
export const OUT_PROJ_SCALE = 12;
export const CONV_STATE = 13; // [dInner, dConv], oldest first
export const SSM_STATE = 14; // [dInner, dState]

@inline
export function slot(layer: i32, s: i32): usize {
  return <usize>load<u32>(layerTable + (<usize>(layer * LAYER_SLOTS + s) << 2));
}

/** 16-byte-aligned bytes from the bump heap (the memory grows; JS re-reads memory.buffer after each call). */
export function alloc(bytes: usize): usize {
  return heap.alloc(bytes);
}

/** The model's sizes, its precision and where its tables and tensors are (mamba/wasm/engine.ts lays them out). */
export function configure(
  model: i32, layers: i32, inner: i32, state: i32, conv: i32, rank: i32, vocabSize: i32, int8Weights: bool, eps_: f32,
  table: usize, embeddingRows: usize, embeddingScales: usize, finalNorm: usize, headRows: usize, headScales: usize,
): void {
  dModel = model; nLayer = layers; dInner = inner; dState = state; dConv = conv; dtRank = rank; vocab = vocabSize;
  int8 = int8Weights; eps = eps_; xdblWidth = dtRank + 2 * dState;
  layerTable = table; embedding = embeddingRows; embeddingScale = embeddingScales; normF = finalNorm;
  head = headRows; headScale = headScales;
  const f = (n: i32): usize => heap.alloc(<usize>n << 2);
  normed = f(BLOCK * dModel);
  convWindow = f((dConv + BLOCK) * dInner);
  xc = f(BLOCK * dInner);
  zGate = f(BLOCK * dInner);
  xdbl = f(BLOCK * xdblWidth);
  delta = f(BLOCK * dInner);
  yBuf = f(BLOCK * dInner);
  accBuf = f(BLOCK * 16);
  xq = heap.alloc(<usize>(BLOCK * max(dModel, dInner)) << 1);
  xqScale = f(BLOCK);
  logits = f(BLOCK * vocab);
  stepResid = f(dModel);
  stepRow = f(1);
}

// The input of the next matmuls (prepareInput): every product that reads it shares one quantization.
let inX: usize = 0;
let inLd = 0;
let inK = 0;
let inRows = 0;

/** Sets the matmuls' input, rows of k floats with stride ldx, quantized to i16 rows when the weights are int8. */
export function prepareInput(x: usize, ldx: i32, k: i32, rows: i32): void {
  inX = x;
  inLd = ldx;
  inK = k;
  inRows = rows;
  if (int8) quantizeI16(x, ldx, k, rows, xq, xqScale);
}

/** y (+)= input·Wᵀ for the n weight rows at w (with their scales when int8) and the input set by prepareInput. */
export function project(w: usize, scales: usize, y: usize, ldy: i32, n: i32, acc: bool): void {
  if (int8) gemm<i16>(w, scales, xq, inK, xqScale, y, ldy, n, inK, inRows, acc);
  else gemm<f32>(w, 0, inX, inLd, 0, y, ldy, n, inK, inRows, acc);
}
