// Y[t, j] (+)= Σ_k W[j, k]·X[t, k] for a block of tokens t: W row-major [n, K] (PyTorch's nn.Linear layout, the one
// copy of the weights both prefill and the decode step read), X and Y rows with their own strides (ldx, ldy), so a
// product can read a slice of a wider activation (x_proj's dt columns) or write into one. Tiles of four weight rows ×
// two tokens: each weight vector loaded serves two tokens and each token vector four rows (eight independent sums).
// A single token (the decode step, an odd block) takes the 4 × 1 path. K and n not divisible go through scalar tails.

// AssemblyScript (its own compiler; tsc and Biome skip this folder).

/** a·b + c: one fused multiply-add where relaxed SIMD is on (V8 lowers it to FMA on x64 with FMA3). */
@inline
export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/** [Σa0, Σa1, Σa2, Σa3]: four horizontal sums as one vector (two rounds of pairwise adds). */
@inline
export function hsum4(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const s01 = f32x4.add(v128.shuffle<f32>(a0, a1, 0, 4, 1, 5), v128.shuffle<f32>(a0, a1, 2, 6, 3, 7));
  const s23 = f32x4.add(v128.shuffle<f32>(a2, a3, 0, 4, 1, 5), v128.shuffle<f32>(a2, a3, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(s01, s23, 0, 1, 4, 5), v128.shuffle<f32>(s01, s23, 2, 3, 6, 7));
}

@inline
function hsum4I(a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const s01 = i32x4.add(v128.shuffle<i32>(a0, a1, 0, 4, 1, 5), v128.shuffle<i32>(a0, a1, 2, 6, 3, 7));
  const s23 = i32x4.add(v128.shuffle<i32>(a2, a3, 0, 4, 1, 5), v128.shuffle<i32>(a2, a3, 2, 6, 3, 7));
  return i32x4.add(v128.shuffle<i32>(s01, s23, 0, 1, 4, 5), v128.shuffle<i32>(s01, s23, 2, 3, 6, 7));
}

/** Stores four outputs at y (y[j..j+4] of one token), added to what is there when acc. */
@inline
function put4(y: usize, v: v128, acc: bool): void {
  v128.store(y, acc ? f32x4.add(v128.load(y), v) : v);
}

@inline
function put1(y: usize, v: f32, acc: bool): void {
  store<f32>(y, acc ? load<f32>(y) + v : v);
}

/** Σ_k w[k]·x[k] for the scalar tails (rows past the last tile of four; K past the last vector). */
function dotF32(w: usize, x: usize, from: i32, k: i32): f32 {
  let s: f32 = 0;
  for (let i = from; i < k; i++) s += load<f32>(w + (<usize>i << 2)) * load<f32>(x + (<usize>i << 2));
  return s;
}

/** The K tail of four rows against one token, as a vector to add to the tile's sums. */
@inline
function tailF32(w0: usize, wRow: usize, x: usize, k4: i32, k: i32): v128 {
  if (k4 == k) return f32x4.splat(0);
  let v = f32x4.splat(dotF32(w0, x, k4, k));
  v = f32x4.replace_lane(v, 1, dotF32(w0 + wRow, x, k4, k));
  v = f32x4.replace_lane(v, 2, dotF32(w0 + 2 * wRow, x, k4, k));
  return f32x4.replace_lane(v, 3, dotF32(w0 + 3 * wRow, x, k4, k));
}

/** fp32 weights. */
export function gemmF32(w: usize, x: usize, ldx: i32, y: usize, ldy: i32, n: i32, k: i32, rows: i32, acc: bool): void {
  const k4 = k & ~3;
  const wRow = <usize>k << 2;
  const xRow = <usize>ldx << 2;
  const yRow = <usize>ldy << 2;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const w0 = w + <usize>j * wRow;
    const w1 = w0 + wRow;
    const w2 = w1 + wRow;
    const w3 = w2 + wRow;
    let t = 0;
    for (; t + 2 <= rows; t += 2) {
      const xa = x + <usize>t * xRow;
      const xb = xa + xRow;
      let a0 = f32x4.splat(0);
      let a1 = f32x4.splat(0);
      let a2 = f32x4.splat(0);
      let a3 = f32x4.splat(0);
      let b0 = f32x4.splat(0);
      let b1 = f32x4.splat(0);
      let b2 = f32x4.splat(0);
      let b3 = f32x4.splat(0);
      for (let i = 0; i < k4; i += 4) {
        const off = <usize>i << 2;
        const xv = v128.load(xa + off);
        const xw = v128.load(xb + off);
        const v0 = v128.load(w0 + off);
        a0 = madd(v0, xv, a0);
        b0 = madd(v0, xw, b0);
        const v1 = v128.load(w1 + off);
        a1 = madd(v1, xv, a1);
        b1 = madd(v1, xw, b1);
        const v2 = v128.load(w2 + off);
        a2 = madd(v2, xv, a2);
        b2 = madd(v2, xw, b2);
        const v3 = v128.load(w3 + off);
        a3 = madd(v3, xv, a3);
        b3 = madd(v3, xw, b3);
      }
      const ya = y + <usize>t * yRow + (<usize>j << 2);
      put4(ya, f32x4.add(hsum4(a0, a1, a2, a3), tailF32(w0, wRow, xa, k4, k)), acc);
      put4(ya + yRow, f32x4.add(hsum4(b0, b1, b2, b3), tailF32(w0, wRow, xb, k4, k)), acc);
    }
    if (t < rows) {
      const xa = x + <usize>t * xRow;
      let a0 = f32x4.splat(0);
      let a1 = f32x4.splat(0);
      let a2 = f32x4.splat(0);
      let a3 = f32x4.splat(0);
      for (let i = 0; i < k4; i += 4) {
        const off = <usize>i << 2;
        const xv = v128.load(xa + off);
        a0 = madd(v128.load(w0 + off), xv, a0);
        a1 = madd(v128.load(w1 + off), xv, a1);
        a2 = madd(v128.load(w2 + off), xv, a2);
        a3 = madd(v128.load(w3 + off), xv, a3);
      }
      put4(y + <usize>t * yRow + (<usize>j << 2), f32x4.add(hsum4(a0, a1, a2, a3), tailF32(w0, wRow, xa, k4, k)), acc);
    }
  }
  for (; j < n; j++) {
    const wr = w + <usize>j * wRow;
    for (let t = 0; t < rows; t++)
      put1(y + <usize>t * yRow + (<usize>j << 2), dotF32(wr, x + <usize>t * xRow, 0, k), acc);
  }
}

/**
 * Each row of x (f32, stride ldx) → i16 (stride k), symmetric, one scale per row in xs. ~15-bit activations keep the
 * product's error at the int8 weights' (weight-only int8 accuracy, computed with integer dot products). The largest
 * level is 16383, lowered for K > 512 so that K · 127 · level < 2^31: the i32 sums cannot overflow.
 */
export function quantizeI16(x: usize, ldx: i32, k: i32, rows: i32, xq: usize, xs: usize): void {
  const level = <f32>min(16383, 2147483647 / (127 * k));
  for (let t = 0; t < rows; t++) {
    const xr = x + ((<usize>(t * ldx)) << 2);
    const qr = xq + ((<usize>(t * k)) << 1);
    let m: f32 = 0;
    for (let i = 0; i < k; i++) m = max(m, abs(load<f32>(xr + (<usize>i << 2))));
    const scale: f32 = m > 0 ? m / level : 1;
    const inv: f32 = 1 / scale;
    for (let i = 0; i < k; i++)
      store<i16>(qr + (<usize>i << 1), <i16>i32(nearest(load<f32>(xr + (<usize>i << 2)) * inv)));
    store<f32>(xs + (<usize>t << 2), scale);
  }
}

/** 16 int8 weights (sign-extended to two i16x8 halves) against 16 i16 activations, added into acc. */
@inline
function dot16(acc: v128, wlo: v128, whi: v128, x: usize): v128 {
  acc = i32x4.add(acc, i32x4.dot_i16x8_s(wlo, v128.load(x)));
  return i32x4.add(acc, i32x4.dot_i16x8_s(whi, v128.load(x, 16)));
}

function dotI8(w: usize, xq: usize, from: i32, k: i32): i32 {
  let s: i32 = 0;
  for (let i = from; i < k; i++) s += <i32>load<i8>(w + <usize>i) * <i32>load<i16>(xq + (<usize>i << 1));
  return s;
}

@inline
function tailI8(w0: usize, k: i32, x: usize, k16: i32): v128 {
  if (k16 == k) return i32x4.splat(0);
  const wRow = <usize>k;
  let v = i32x4.splat(dotI8(w0, x, k16, k));
  v = i32x4.replace_lane(v, 1, dotI8(w0 + wRow, x, k16, k));
  v = i32x4.replace_lane(v, 2, dotI8(w0 + 2 * wRow, x, k16, k));
  return i32x4.replace_lane(v, 3, dotI8(w0 + 3 * wRow, x, k16, k));
}

/** The integer sums of four rows × one token, scaled back to f32 (row scales × the token's activation scale). */
@inline
function scaled(sums: v128, rowScales: usize, xs: usize, t: i32): v128 {
  const s = f32x4.mul(v128.load(rowScales), f32x4.splat(load<f32>(xs + (<usize>t << 2))));
  return f32x4.mul(f32x4.convert_i32x4_s(sums), s);
}

/** int8 weights with one f32 scale per row, times x already quantized by quantizeI16 (xq [rows, k], scales xs). */
export function gemmI8(
  w: usize,
  scales: usize,
  xq: usize,
  xs: usize,
  y: usize,
  ldy: i32,
  n: i32,
  k: i32,
  rows: i32,
  acc: bool,
): void {
  const k16 = k & ~15;
  const wRow = <usize>k;
  const xRow = <usize>k << 1;
  const yRow = <usize>ldy << 2;
  let j = 0;
  for (; j + 4 <= n; j += 4) {
    const w0 = w + <usize>j * wRow;
    const rs = scales + (<usize>j << 2);
    let t = 0;
    for (; t + 2 <= rows; t += 2) {
      const xa = xq + <usize>t * xRow;
      const xb = xa + xRow;
      let a0 = i32x4.splat(0);
      let a1 = i32x4.splat(0);
      let a2 = i32x4.splat(0);
      let a3 = i32x4.splat(0);
      let b0 = i32x4.splat(0);
      let b1 = i32x4.splat(0);
      let b2 = i32x4.splat(0);
      let b3 = i32x4.splat(0);
      for (let i = 0; i < k16; i += 16) {
        const xo = <usize>i << 1;
        let v = v128.load(w0 + <usize>i);
        let lo = i16x8.extend_low_i8x16_s(v);
        let hi = i16x8.extend_high_i8x16_s(v);
        a0 = dot16(a0, lo, hi, xa + xo);
        b0 = dot16(b0, lo, hi, xb + xo);
        v = v128.load(w0 + wRow + <usize>i);
        lo = i16x8.extend_low_i8x16_s(v);
        hi = i16x8.extend_high_i8x16_s(v);
        a1 = dot16(a1, lo, hi, xa + xo);
        b1 = dot16(b1, lo, hi, xb + xo);
        v = v128.load(w0 + 2 * wRow + <usize>i);
        lo = i16x8.extend_low_i8x16_s(v);
        hi = i16x8.extend_high_i8x16_s(v);
        a2 = dot16(a2, lo, hi, xa + xo);
        b2 = dot16(b2, lo, hi, xb + xo);
        v = v128.load(w0 + 3 * wRow + <usize>i);
        lo = i16x8.extend_low_i8x16_s(v);
        hi = i16x8.extend_high_i8x16_s(v);
        a3 = dot16(a3, lo, hi, xa + xo);
        b3 = dot16(b3, lo, hi, xb + xo);
      }
      const ya = y + <usize>t * yRow + (<usize>j << 2);
      put4(ya, scaled(i32x4.add(hsum4I(a0, a1, a2, a3), tailI8(w0, k, xa, k16)), rs, xs, t), acc);
      put4(ya + yRow, scaled(i32x4.add(hsum4I(b0, b1, b2, b3), tailI8(w0, k, xb, k16)), rs, xs, t + 1), acc);
    }
    if (t < rows) {
      const xa = xq + <usize>t * xRow;
      let a0 = i32x4.splat(0);
      let a1 = i32x4.splat(0);
      let a2 = i32x4.splat(0);
      let a3 = i32x4.splat(0);
      for (let i = 0; i < k16; i += 16) {
        const xo = xa + (<usize>i << 1);
        let v = v128.load(w0 + <usize>i);
        a0 = dot16(a0, i16x8.extend_low_i8x16_s(v), i16x8.extend_high_i8x16_s(v), xo);
        v = v128.load(w0 + wRow + <usize>i);
        a1 = dot16(a1, i16x8.extend_low_i8x16_s(v), i16x8.extend_high_i8x16_s(v), xo);
        v = v128.load(w0 + 2 * wRow + <usize>i);
        a2 = dot16(a2, i16x8.extend_low_i8x16_s(v), i16x8.extend_high_i8x16_s(v), xo);
        v = v128.load(w0 + 3 * wRow + <usize>i);
        a3 = dot16(a3, i16x8.extend_low_i8x16_s(v), i16x8.extend_high_i8x16_s(v), xo);
      }
      const sums = i32x4.add(hsum4I(a0, a1, a2, a3), tailI8(w0, k, xa, k16));
      put4(y + <usize>t * yRow + (<usize>j << 2), scaled(sums, rs, xs, t), acc);
    }
  }
  for (; j < n; j++) {
    const wr = w + <usize>j * wRow;
    const rowScale = load<f32>(scales + (<usize>j << 2));
    for (let t = 0; t < rows; t++) {
      const s = <f32>dotI8(wr, xq + <usize>t * xRow, 0, k) * rowScale * load<f32>(xs + (<usize>t << 2));
      put1(y + <usize>t * yRow + (<usize>j << 2), s, acc);
    }
  }
}
