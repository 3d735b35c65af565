// Y[t, j] (+)= Σ_k W[j, k]·X[t, k] for a block of tokens t: W row-major [n, K] (PyTorch's nn.Linear layout, the one
// copy of the weights both prefill and the decode step read), Y rows with their own stride (ldy), so a product can
// write into a wider activation. Tiles of four weight rows × two tokens: each weight vector loaded serves two tokens
// and each token vector four rows (eight independent sums). A single token (the decode step, an odd block) takes the
// 4 × 1 path. K and n not divisible go through scalar tails. One loop for both weight types (T, fixed at compile time):
//   f32: fp32 weights, x f32 rows with stride ldx;
//   i16: int8 weights stored widened to i16 (values in [−127, 127], one f32 scale per row; widened once at load, so the
//        inner loop is loads and `i32x4.dot_i16x8_s` only), x quantized by quantizeI16 (i16 rows, stride K, a scale
//        each).

// AssemblyScript (its own compiler; tsc and Biome skip this folder).

/** 1.5·2^23: added to |v| < 2^22, it leaves round(v) in the sum's low mantissa bits (exp and quantizeI16 use it). */
export const ROUND_MAGIC: f32 = 12582912;

/** a·b + c: one fused multiply-add where relaxed SIMD is on (V8 lowers it to FMA on x64 with FMA3). */
@inline
export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** [Σa0, Σa1, Σa2, Σa3]: four horizontal sums as one vector (two rounds of pairwise adds; T: f32 or i32 lanes). */
@inline
export function hsum4<T>(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const s01 = v128.add<T>(v128.shuffle<T>(a0, a1, 0, 4, 1, 5), v128.shuffle<T>(a0, a1, 2, 6, 3, 7));
  const s23 = v128.add<T>(v128.shuffle<T>(a2, a3, 0, 4, 1, 5), v128.shuffle<T>(a2, a3, 2, 6, 3, 7));
  return v128.add<T>(v128.shuffle<T>(s01, s23, 0, 1, 4, 5), v128.shuffle<T>(s01, s23, 2, 3, 6, 7));
}

/** Stores four outputs at y (y[j..j+4] of one token), added to what is there when acc. */
@inline
function put4(y: usize, v: v128, acc: bool): void {
  v128.store(y, acc ? f32x4.add(v128.load(y), v) : v);
}

function dotF32(w: usize, x: usize, from: i32, k: i32): f32 {
  let s: f32 = 0;
  for (let i = from; i < k; i++) s += load<f32>(w + (<usize>i << 2)) * load<f32>(x + (<usize>i << 2));
  return s;
}

function dotI16(w: usize, xq: usize, from: i32, k: i32): i32 {
  let s: i32 = 0;
  for (let i = from; i < k; i++) s += <i32>load<i16>(w + (<usize>i << 1)) * <i32>load<i16>(xq + (<usize>i << 1));
  return s;
}

// The last tile's sums, one vector per token (four rows each): f32 lanes, or i32 lanes for int8.
let tileA: v128 = i32x4.splat(0);
let tileB: v128 = i32x4.splat(0);

/** The vector part of K for four weight rows against token xa and, when pair, token xb, into tileA/tileB. */
@inline
function tile<T>(w0: usize, wRow: usize, xa: usize, xb: usize, pair: bool, kMain: i32): void {
  let a0 = i32x4.splat(0), a1 = a0, a2 = a0, a3 = a0; // token a's sums, one vector a weight row
  let b0 = a0, b1 = a0, b2 = a0, b3 = a0; // token b's
  const w1 = w0 + wRow;
  const w2 = w1 + wRow;
  const w3 = w2 + wRow;
  // One line a weight row; a row's weight load is the same expression for both tokens, which V8 computes once.
  if (isInteger<T>()) {
    for (let i = 0; i < kMain; i += 8) {
      const off = <usize>i << 1;
      const xv = v128.load(xa + off);
      const xw = pair ? v128.load(xb + off) : xv;
      a0 = i32x4.add(a0, i32x4.dot_i16x8_s(v128.load(w0 + off), xv));
      if (pair) b0 = i32x4.add(b0, i32x4.dot_i16x8_s(v128.load(w0 + off), xw));
      a1 = i32x4.add(a1, i32x4.dot_i16x8_s(v128.load(w1 + off), xv));
      if (pair) b1 = i32x4.add(b1, i32x4.dot_i16x8_s(v128.load(w1 + off), xw));
      a2 = i32x4.add(a2, i32x4.dot_i16x8_s(v128.load(w2 + off), xv));
      if (pair) b2 = i32x4.add(b2, i32x4.dot_i16x8_s(v128.load(w2 + off), xw));
      a3 = i32x4.add(a3, i32x4.dot_i16x8_s(v128.load(w3 + off), xv));
      if (pair) b3 = i32x4.add(b3, i32x4.dot_i16x8_s(v128.load(w3 + off), xw));
    }
    tileA = hsum4<i32>(a0, a1, a2, a3);
    if (pair) tileB = hsum4<i32>(b0, b1, b2, b3);
  } else {
    for (let i = 0; i < kMain; i += 4) {
      const off = <usize>i << 2;
      const xv = v128.load(xa + off);
      const xw = pair ? v128.load(xb + off) : xv;
      a0 = madd(v128.load(w0 + off), xv, a0); if (pair) b0 = madd(v128.load(w0 + off), xw, b0);
      a1 = madd(v128.load(w1 + off), xv, a1); if (pair) b1 = madd(v128.load(w1 + off), xw, b1);
      a2 = madd(v128.load(w2 + off), xv, a2); if (pair) b2 = madd(v128.load(w2 + off), xw, b2);
      a3 = madd(v128.load(w3 + off), xv, a3); if (pair) b3 = madd(v128.load(w3 + off), xw, b3);
    }
    tileA = hsum4<f32>(a0, a1, a2, a3);
    if (pair) tileB = hsum4<f32>(b0, b1, b2, b3);
  }
}

/**
 * A tile's four outputs for token t: its vector sums plus the scalar tail of K (kMain..k), and, for int8, times the
 * rows' scales and the token's activation scale.
 */
@inline
function finish<T>(
  sums: v128,
  w0: usize,
  wRow: usize,
  x: usize,
  kMain: i32,
  k: i32,
  scales: usize,
  xs: usize,
  t: i32,
): v128 {
  if (isInteger<T>()) {
    if (kMain < k) {
      let tail = i32x4.splat(dotI16(w0, x, kMain, k));
      tail = i32x4.replace_lane(tail, 1, dotI16(w0 + wRow, x, kMain, k));
      tail = i32x4.replace_lane(tail, 2, dotI16(w0 + 2 * wRow, x, kMain, k));
      sums = i32x4.add(sums, i32x4.replace_lane(tail, 3, dotI16(w0 + 3 * wRow, x, kMain, k)));
    }
    const s = f32x4.mul(v128.load(scales), f32x4.splat(load<f32>(xs + (<usize>t << 2))));
    return f32x4.mul(f32x4.convert_i32x4_s(sums), s);
  }
  if (kMain == k) return sums;
  let tail = f32x4.splat(dotF32(w0, x, kMain, k));
  tail = f32x4.replace_lane(tail, 1, dotF32(w0 + wRow, x, kMain, k));
  tail = f32x4.replace_lane(tail, 2, dotF32(w0 + 2 * wRow, x, kMain, k));
  return f32x4.add(sums, f32x4.replace_lane(tail, 3, dotF32(w0 + 3 * wRow, x, kMain, k)));
}

/** Y (+)= X·Wᵀ (see the top of this file for T, x, ldx, scales and xs; ldx is ignored for int8). */
export function gemm<T>(
  w: usize,
  scales: usize,
  x: usize,
  ldx: i32,
  xs: usize,
  y: usize,
  ldy: i32,
  n: i32,
  k: i32,
  rows: i32,
  acc: bool,
): void {
  const int = isInteger<T>();
  const kMain = int ? k & ~7 : k & ~3;
  const wRow: usize = int ? <usize>k << 1 : <usize>k << 2;
  const xRow: usize = int ? <usize>k << 1 : <usize>ldx << 2;
  const yRow = <usize>ldy << 2;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const w0 = w + <usize>j * wRow;
    const rowScales = scales + (<usize>j << 2);
    for (let t = 0; t < rows; t += 2) {
      const xa = x + <usize>t * xRow;
      const ya = y + <usize>t * yRow + (<usize>j << 2);
      if (t + 1 < rows) {
        tile<T>(w0, wRow, xa, xa + xRow, true, kMain);
        put4(ya, finish<T>(tileA, w0, wRow, xa, kMain, k, rowScales, xs, t), acc);
        put4(ya + yRow, finish<T>(tileB, w0, wRow, xa + xRow, kMain, k, rowScales, xs, t + 1), acc);
      } else {
        tile<T>(w0, wRow, xa, 0, false, kMain);
        put4(ya, finish<T>(tileA, w0, wRow, xa, kMain, k, rowScales, xs, t), acc);
      }
    }
  }
  for (; j < n; j++) {
    const wr = w + <usize>j * wRow;
    for (let t = 0; t < rows; t++) {
      const xr = x + <usize>t * xRow;
      const yo = y + <usize>t * yRow + (<usize>j << 2);
      const scale: f32 = int ? load<f32>(scales + (<usize>j << 2)) * load<f32>(xs + (<usize>t << 2)) : 1;
      const v: f32 = int ? <f32>dotI16(wr, xr, 0, k) * scale : dotF32(wr, xr, 0, k);
      store<f32>(yo, acc ? load<f32>(yo) + v : v);
    }
  }
}

/**
 * Each row of x (f32, stride ldx) → i16 (stride k), symmetric, one scale per row in xs. ~15-bit activations keep the
 * product's error at the int8 weights' (weight-only int8 accuracy, computed with integer dot products). The largest
 * level is 16383, lowered for K > 512 so that K · 127 · level < 2^31: the i32 sums cannot overflow. Eight values a
 * step (x_proj's 48 outputs make this as long as its matmul in scalar code); rounding is the 1.5·2^23 trick, ties to
 * even like `nearest`: |v| ≤ 16383 lands in t's low mantissa bits, so t's bits minus the magic's are round(v).
 */
export function quantizeI16(x: usize, ldx: i32, k: i32, rows: i32, xq: usize, xs: usize): void {
  const level = <f32>min(16383, 2147483647 / (127 * k));
  const kMain = k & ~7;
  const magic = f32x4.splat(ROUND_MAGIC);
  for (let t = 0; t < rows; t++) {
    const xr = x + ((<usize>(t * ldx)) << 2);
    const qr = xq + ((<usize>(t * k)) << 1);
    let mv = f32x4.splat(0);
    for (let i = 0; i < kMain; i += 4) mv = f32x4.pmax(mv, f32x4.abs(v128.load(xr + (<usize>i << 2))));
    let m: f32 = max(
      max(f32x4.extract_lane(mv, 0), f32x4.extract_lane(mv, 1)),
      max(f32x4.extract_lane(mv, 2), f32x4.extract_lane(mv, 3)),
    );
    for (let i = kMain; i < k; i++) m = max(m, abs(load<f32>(xr + (<usize>i << 2))));
    const scale: f32 = m > 0 ? m / level : 1;
    const inv: f32 = 1 / scale;
    const invV = f32x4.splat(inv);
    for (let i = 0; i < kMain; i += 8) {
      const p = xr + (<usize>i << 2);
      const lo = i32x4.sub(f32x4.add(f32x4.mul(v128.load(p), invV), magic), magic);
      const hi = i32x4.sub(f32x4.add(f32x4.mul(v128.load(p, 16), invV), magic), magic);
      v128.store(qr + (<usize>i << 1), i16x8.narrow_i32x4_s(lo, hi));
    }
    for (let i = kMain; i < k; i++)
      store<i16>(qr + (<usize>i << 1), <i16>i32(nearest(load<f32>(xr + (<usize>i << 2)) * inv)));
    store<f32>(xs + (<usize>t << 2), scale);
  }
}
