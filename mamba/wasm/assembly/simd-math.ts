// Vector exp and the activations built on it, four f32 lanes at a time (WASM SIMD). Minimax polynomials fitted
// here: about 1–3 ulp, close enough that a step matches the f64 reference to ~1e-6.

// AssemblyScript (its own compiler; tsc and Biome skip this folder).
import { madd, ROUND_MAGIC } from './gemm';

/** log2 e: e^x = 2^(x·log2 e); the scan folds it into A once per channel. */
export const LOG2E: f32 = 1.44269504088896341;

/** ROUND_MAGIC + 127: round(v) + 127 (the exponent bias) lands in t's low mantissa bits (see exp2InRange). */
const EXP_MAGIC: f32 = ROUND_MAGIC + 127;

/**
 * 2^x per lane for x in [−125, 127], where both 2^x and 2^n are normal floats: WASM cannot flush denormals, and x86
 * takes a slow path on each one. n = round(x) by the 1.5·2^23 trick with the exponent bias folded into the magic
 * number: t's low nine bits are n + 127 ∈ [2, 254], so t << 23 is 2^n as a float (no rounding, conversion or
 * bias-add instructions, which V8 lowers to long sequences). r = x − n is exact (|r| ≤ 0.5), and 2^r is a degree-5
 * polynomial fitted for minimax relative error on [−0.5, 0.5]: 1.9e-7 measured in f32. Ten ops and seven
 * constants; e^x through it (x·log2 e first) took the place of Cephes' expf (Cody–Waite reduction, degree-7
 * polynomial, 14 ops), which the scan ran for every state of every token: its loop is bound by FP ops.
 */
@inline
function exp2InRange(x: v128): v128 {
  const t = f32x4.add(x, f32x4.splat(EXP_MAGIC));
  const r = f32x4.sub(x, f32x4.sub(t, f32x4.splat(EXP_MAGIC)));
  let p = madd(f32x4.splat(1.3264723820611835e-3), r, f32x4.splat(9.671512991189957e-3));
  p = madd(p, r, f32x4.splat(5.550733581185341e-2));
  p = madd(p, r, f32x4.splat(2.4022242426872253e-1));
  p = madd(p, r, f32x4.splat(6.931470036506653e-1));
  p = madd(p, r, f32x4.splat(1.0));
  return f32x4.mul(p, i32x4.shl(t, 23));
}

// Clamps and max(v, 0) use pmin/pmax (one minps/maxps on x64): f32x4.min/max's NaN and ±0 rules cost V8 about eight
// instructions each, and the scan's exp runs for every state of every token. No NaN reaches them (nor would it matter).

/**
 * e^x per lane, x·log2 e clamped to [−125, 127] (e^x under 2.4e-38 or over 1.7e38 saturates there). Rounding x·log2 e
 * adds up to |x|·9e-8 relative error: measured ≤ 5.9e-7 for |x| < 10 and ≤ 3.9e-6 over [−86, 88] (where e^x is
 * negligible next to the 1 it is added to in SiLU and softplus).
 */
@inline
export function expV(x: v128): v128 {
  return exp2InRange(f32x4.pmin(f32x4.pmax(f32x4.mul(x, f32x4.splat(LOG2E)), f32x4.splat(-125)), f32x4.splat(127)));
}

/** e^x per lane for x ≤ 0 (softplus's e^−|v|; error as expV's). */
@inline
export function expNonPositive(x: v128): v128 {
  return exp2NonPositive(f32x4.mul(x, f32x4.splat(LOG2E)));
}

/** 2^x per lane for x ≤ 0, clamped at −125 (the scan's Δ·A·log2 e: Δ·A' with A' = A·log2 e per channel). */
@inline
export function exp2NonPositive(x: v128): v128 {
  return exp2InRange(f32x4.pmax(x, f32x4.splat(-125)));
}

/**
 * softplus(v) = max(v, 0) + ln(1 + u), u = e^−|v| ∈ (0, 1]: no overflow, and equal to v past 20 like the reference's
 * branch. ln(1 + u) = 2·atanh(s) with s = u / (2 + u) ∈ [0, 1/3], as s·g(s²), g a degree-4 polynomial fitted for
 * minimax relative error (2.3e-7 measured in f32 over u ∈ [0, 1]): one division and six ops in place of a general
 * log's exponent split and degree-8 polynomial (about 24 ops), for every channel of every token. softplus measured
 * ≤ 3.8e-6 relative over v ∈ [−80, 30] (e^−|v|'s error); ln of the rounded 1 + u lost u for v < −16.6.
 */
@inline
export function softplusV(v: v128): v128 {
  const u = expNonPositive(f32x4.neg(f32x4.abs(v)));
  const s = f32x4.div(u, f32x4.add(u, f32x4.splat(2.0)));
  const z = f32x4.mul(s, s);
  let g = madd(f32x4.splat(0.2817833125591278), z, f32x4.splat(0.27960604429244995));
  g = madd(g, z, f32x4.splat(0.40024909377098083));
  g = madd(g, z, f32x4.splat(0.6666631698608398));
  g = madd(g, z, f32x4.splat(2.0));
  return f32x4.add(f32x4.pmax(v, f32x4.splat(0)), f32x4.mul(g, s));
}

/** SiLU(v) = v / (1 + e^−v). */
@inline
export function siluV(v: v128): v128 {
  return f32x4.div(v, f32x4.add(f32x4.splat(1.0), expV(f32x4.neg(v))));
}

/** Sum of the four lanes. */
@inline
export function hsum(v: v128): f32 {
  return (
    f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + (f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3))
  );
}
