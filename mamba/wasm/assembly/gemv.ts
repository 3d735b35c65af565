// Matrix–vector products for one decode step, y[r] = Σ_k W[r, k]·x[k], W row-major [rows, K] (PyTorch's nn.Linear
// layout). Four rows per pass so each load of x serves four rows (fp32: two vectors of K per turn, eight independent
// sums, so more weight loads are in flight); a scalar tail covers K and rows not divisible.

// AssemblyScript (its own compiler; tsc and Biome skip this folder).
import { hsum } from './simd-math';

/** fp32 weights. */
export function gemvF32(w: usize, x: usize, y: usize, rows: i32, k: i32): void {
  const k4 = k & ~3;
  const rowBytes = <usize>k << 2;
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const w0 = w + <usize>r * rowBytes;
    const w1 = w0 + rowBytes;
    const w2 = w1 + rowBytes;
    const w3 = w2 + rowBytes;
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    let b0 = f32x4.splat(0);
    let b1 = f32x4.splat(0);
    let b2 = f32x4.splat(0);
    let b3 = f32x4.splat(0);
    const k8 = k & ~7;
    for (let i = 0; i < k8; i += 8) {
      const off = <usize>i << 2;
      const xv = v128.load(x + off);
      const xw = v128.load(x + off, 16);
      a0 = f32x4.add(a0, f32x4.mul(v128.load(w0 + off), xv));
      a1 = f32x4.add(a1, f32x4.mul(v128.load(w1 + off), xv));
      a2 = f32x4.add(a2, f32x4.mul(v128.load(w2 + off), xv));
      a3 = f32x4.add(a3, f32x4.mul(v128.load(w3 + off), xv));
      b0 = f32x4.add(b0, f32x4.mul(v128.load(w0 + off, 16), xw));
      b1 = f32x4.add(b1, f32x4.mul(v128.load(w1 + off, 16), xw));
      b2 = f32x4.add(b2, f32x4.mul(v128.load(w2 + off, 16), xw));
      b3 = f32x4.add(b3, f32x4.mul(v128.load(w3 + off, 16), xw));
    }
    for (let i = k8; i < k4; i += 4) {
      const off = <usize>i << 2;
      const xv = v128.load(x + off);
      a0 = f32x4.add(a0, f32x4.mul(v128.load(w0 + off), xv));
      a1 = f32x4.add(a1, f32x4.mul(v128.load(w1 + off), xv));
      a2 = f32x4.add(a2, f32x4.mul(v128.load(w2 + off), xv));
      a3 = f32x4.add(a3, f32x4.mul(v128.load(w3 + off), xv));
    }
    a0 = f32x4.add(a0, b0);
    a1 = f32x4.add(a1, b1);
    a2 = f32x4.add(a2, b2);
    a3 = f32x4.add(a3, b3);
    let s0 = hsum(a0);
    let s1 = hsum(a1);
    let s2 = hsum(a2);
    let s3 = hsum(a3);
    for (let i = k4; i < k; i++) {
      const xi = load<f32>(x + (<usize>i << 2));
      const off = <usize>i << 2;
      s0 += load<f32>(w0 + off) * xi;
      s1 += load<f32>(w1 + off) * xi;
      s2 += load<f32>(w2 + off) * xi;
      s3 += load<f32>(w3 + off) * xi;
    }
    const yo = y + (<usize>r << 2);
    store<f32>(yo, s0);
    store<f32>(yo, s1, 4);
    store<f32>(yo, s2, 8);
    store<f32>(yo, s3, 12);
  }
  for (; r < rows; r++) {
    const wr = w + <usize>r * rowBytes;
    let s: f32 = 0;
    for (let i = 0; i < k; i++) s += load<f32>(wr + (<usize>i << 2)) * load<f32>(x + (<usize>i << 2));
    store<f32>(y + (<usize>r << 2), s);
  }
}

/**
 * x (f32) → xq (i16), symmetric, one scale for the vector; returns the scale. ~15-bit activations keep the product's
 * error at the int8 weights' (the result is weight-only int8 accuracy, computed with integer dot products). The
 * largest level is 16383, lowered for K > 512 so that K · 127 · level < 2^31: the i32 sums cannot overflow.
 */
export function quantizeI16(x: usize, xq: usize, k: i32): f32 {
  let m: f32 = 0;
  for (let i = 0; i < k; i++) m = max(m, abs(load<f32>(x + (<usize>i << 2))));
  const level = <f32>min(16383, 2147483647 / (127 * k));
  const scale: f32 = m > 0 ? m / level : 1;
  const inv: f32 = 1 / scale;
  for (let i = 0; i < k; i++) store<i16>(xq + (<usize>i << 1), <i16>i32(nearest(load<f32>(x + (<usize>i << 2)) * inv)));
  return scale;
}

@inline
function dot16(acc: v128, w16: v128, xlo: v128, xhi: v128): v128 {
  acc = i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w16), xlo));
  return i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w16), xhi));
}

@inline
function hsumI(v: v128): i32 {
  return i32x4.extract_lane(v, 0) + i32x4.extract_lane(v, 1) + i32x4.extract_lane(v, 2) + i32x4.extract_lane(v, 3);
}

/** int8 weights with one f32 scale per row, times the i16-quantized x (scale xs): integer dot products, one f32 multiply. */
export function gemvI8(w: usize, scales: usize, xq: usize, xs: f32, y: usize, rows: i32, k: i32): void {
  const k16 = k & ~15;
  const rowBytes = <usize>k;
  let r = 0;
  for (; r + 4 <= rows; r += 4) {
    const w0 = w + <usize>r * rowBytes;
    const w1 = w0 + rowBytes;
    const w2 = w1 + rowBytes;
    const w3 = w2 + rowBytes;
    let a0 = i32x4.splat(0);
    let a1 = i32x4.splat(0);
    let a2 = i32x4.splat(0);
    let a3 = i32x4.splat(0);
    for (let i = 0; i < k16; i += 16) {
      const xo = xq + (<usize>i << 1);
      const xlo = v128.load(xo);
      const xhi = v128.load(xo, 16);
      const off = <usize>i;
      a0 = dot16(a0, v128.load(w0 + off), xlo, xhi);
      a1 = dot16(a1, v128.load(w1 + off), xlo, xhi);
      a2 = dot16(a2, v128.load(w2 + off), xlo, xhi);
      a3 = dot16(a3, v128.load(w3 + off), xlo, xhi);
    }
    let s0 = hsumI(a0);
    let s1 = hsumI(a1);
    let s2 = hsumI(a2);
    let s3 = hsumI(a3);
    for (let i = k16; i < k; i++) {
      const xi = <i32>load<i16>(xq + (<usize>i << 1));
      s0 += <i32>load<i8>(w0 + <usize>i) * xi;
      s1 += <i32>load<i8>(w1 + <usize>i) * xi;
      s2 += <i32>load<i8>(w2 + <usize>i) * xi;
      s3 += <i32>load<i8>(w3 + <usize>i) * xi;
    }
    const so = scales + (<usize>r << 2);
    const yo = y + (<usize>r << 2);
    store<f32>(yo, <f32>s0 * load<f32>(so) * xs);
    store<f32>(yo, <f32>s1 * load<f32>(so, 4) * xs, 4);
    store<f32>(yo, <f32>s2 * load<f32>(so, 8) * xs, 8);
    store<f32>(yo, <f32>s3 * load<f32>(so, 12) * xs, 12);
  }
  for (; r < rows; r++) {
    const wr = w + <usize>r * rowBytes;
    let s: i32 = 0;
    for (let i = 0; i < k; i++) s += <i32>load<i8>(wr + <usize>i) * <i32>load<i16>(xq + (<usize>i << 1));
    store<f32>(y + (<usize>r << 2), <f32>s * load<f32>(scales + (<usize>r << 2)) * xs);
  }
}
