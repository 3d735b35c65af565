// One Mamba block over a layer's rows, BLOCK tokens at a time, written once for prefill (many rows) and the decode
// step (one row): RMSNorm → in_proj → causal conv + SiLU → x_proj → Δ = softplus(dt_proj(dt) + bias) → selective scan
// (h = exp(Δ·A) ⊙ h + Δ·B·x, y = C·h) → (y + D·x) ⊙ SiLU(z) → out_proj, added into the residual rows in place.
// The conv window and h carry from block to block and stay in the layer's state slots, so the state after a prompt is
// the state the next step continues from. DeciMamba: scoreLayer() gives each row's ‖Δ‖₂; runLayer() then keeps the
// chosen rows (the choice is mamba/decimation.ts's, made in JS), compacting them to the front of the residual rows.

// AssemblyScript (its own compiler; tsc and Biome skip this folder).
import { gemm, hsum4, madd } from './gemm';
import {
  A,
  accBuf,
  BLOCK,
  CONV_B,
  CONV_STATE,
  CONV_WT,
  convWindow,
  D,
  dConv,
  delta,
  dInner,
  dModel,
  DT_B,
  DT_W,
  dState,
  dtRank,
  eps,
  IN_PROJ,
  IN_PROJ_SCALE,
  NORM,
  normed,
  OUT_PROJ,
  OUT_PROJ_SCALE,
  prepareInput,
  project,
  slot,
  SSM_STATE,
  X_PROJ,
  X_PROJ_SCALE,
  xc,
  xdbl,
  xdblWidth,
  yBuf,
  zGate,
} from './model';
import { exp2NonPositive, expNonPositive, hsum, LOG2E, siluV, softplusV } from './simd-math';

/** out[t] = x[t] / sqrt(mean(x[t]²) + eps) ⊙ w for rows of dModel floats (dModel % 4 == 0, checked by the engine). */
export function rmsNormRows(x: usize, rows: i32, w: usize, out: usize): void {
  const rowBytes = <usize>dModel << 2;
  for (let t = 0; t < rows; t++) {
    const xr = x + <usize>t * rowBytes;
    const or = out + <usize>t * rowBytes;
    let acc = f32x4.splat(0);
    for (let i = 0; i < dModel; i += 4) {
      const v = v128.load(xr + (<usize>i << 2));
      acc = madd(v, v, acc);
    }
    const scale = f32x4.splat(<f32>1 / Mathf.sqrt(hsum(acc) / <f32>dModel + eps));
    for (let i = 0; i < dModel; i += 4) {
      const o = <usize>i << 2;
      v128.store(or + o, f32x4.mul(f32x4.mul(v128.load(xr + o), scale), v128.load(w + o)));
    }
  }
}

/** The conv window's first dConv rows from the layer's conv state ([dInner, dConv], oldest first). */
function windowFromState(layer: i32): void {
  const st = slot(layer, CONV_STATE);
  for (let c = 0; c < dInner; c++)
    for (let k = 0; k < dConv; k++)
      store<f32>(convWindow + (<usize>(k * dInner + c) << 2), load<f32>(st + (<usize>(c * dConv + k) << 2)));
}

function windowToState(layer: i32): void {
  const st = slot(layer, CONV_STATE);
  for (let c = 0; c < dInner; c++)
    for (let k = 0; k < dConv; k++)
      store<f32>(st + (<usize>(c * dConv + k) << 2), load<f32>(convWindow + (<usize>(k * dInner + c) << 2)));
}

/** RMSNorm, then in_proj's x rows into the conv window after its history (and, when wanted, the z rows, SiLU'd). */
function normAndProject(layer: i32, resid: usize, n: i32, withZ: bool): void {
  rmsNormRows(resid, n, slot(layer, NORM), normed);
  prepareInput(normed, dModel, dModel, n);
  const w = slot(layer, IN_PROJ);
  const s = slot(layer, IN_PROJ_SCALE);
  const win = convWindow + (<usize>(dConv * dInner) << 2);
  project(w, s, win, dInner, dInner, false);
  if (!withZ) return;
  const zRows = <usize>dInner * <usize>dModel;
  const zw = w + (s ? zRows << 1 : zRows << 2); // int8 weights are stored as i16
  project(zw, s + (<usize>dInner << 2), zGate, dInner, dInner, false);
  const end = <usize>(n * dInner) << 2;
  for (let o: usize = 0; o < end; o += 16) v128.store(zGate + o, siluV(v128.load(zGate + o)));
}

/** xc[t] = SiLU(b + Σ_k w[k] ⊙ window[t + 1 + k]), four channels per vector; the window then moves on n rows. */
function convSilu(layer: i32, n: i32): void {
  const wt = slot(layer, CONV_WT);
  const b = slot(layer, CONV_B);
  const rowBytes = <usize>dInner << 2;
  for (let t = 0; t < n; t++) {
    const win = convWindow + <usize>(t + 1) * rowBytes;
    const out = xc + <usize>t * rowBytes;
    for (let c: usize = 0; c < rowBytes; c += 16) {
      let acc = b ? v128.load(b + c) : f32x4.splat(0);
      if (dConv == 4) {
        // The shipped models' kernel width, unrolled: the loop's counter and branches cost as much as its 4 FMAs.
        acc = madd(v128.load(wt + c), v128.load(win + c), acc);
        acc = madd(v128.load(wt + rowBytes + c), v128.load(win + rowBytes + c), acc);
        acc = madd(v128.load(wt + 2 * rowBytes + c), v128.load(win + 2 * rowBytes + c), acc);
        acc = madd(v128.load(wt + 3 * rowBytes + c), v128.load(win + 3 * rowBytes + c), acc);
      } else {
        for (let k = 0; k < dConv; k++) {
          const o = <usize>k * rowBytes + c;
          acc = madd(v128.load(wt + o), v128.load(win + o), acc);
        }
      }
      v128.store(out + c, siluV(acc));
    }
  }
  memory.copy(convWindow, convWindow + <usize>n * rowBytes, <usize>dConv * rowBytes);
}

/** x_proj's dt columns (all of x_proj when withBC), then Δ = softplus(dt_proj(dt) + bias), for m rows of xc. */
function timeStep(layer: i32, m: i32, withBC: bool): void {
  prepareInput(xc, dInner, dInner, m);
  const cols = withBC ? xdblWidth : dtRank;
  project(slot(layer, X_PROJ), slot(layer, X_PROJ_SCALE), xdbl, xdblWidth, cols, false);
  gemmDt(layer, m);
  const bias = slot(layer, DT_B);
  const rowBytes = <usize>dInner << 2;
  for (let t = 0; t < m; t++) {
    const row = delta + <usize>t * rowBytes;
    for (let c: usize = 0; c < rowBytes; c += 16)
      v128.store(row + c, softplusV(f32x4.add(v128.load(row + c), v128.load(bias + c))));
  }
}

/** dt_proj stays fp32 in both precisions (K = dtRank is tiny; its error would go straight into exp(Δ·A)). */
function gemmDt(layer: i32, m: i32): void {
  gemm<f32>(slot(layer, DT_W), 0, xdbl, xdblWidth, 0, delta, dInner, dInner, dtRank, m, false);
}

/**
 * h = exp(Δ·A) ⊙ h + Δ·B·x over m rows for one channel's states [g, g + 4·groups), h kept in registers across the
 * rows; C·h (this group's part of y) goes to accBuf[t][ch % 4] as a vector, summed later four channels at a time.
 */
@inline
function scanStates(ch: i32, g: i32, m: i32, first: bool, a: usize, h: usize): void {
  const stateBytes = <usize>dState << 2;
  const rowBytes = <usize>dInner << 2;
  const xdblRow = <usize>xdblWidth << 2;
  const co = <usize>ch << 2;
  const go = <usize>g << 2;
  const hp = h + <usize>ch * stateBytes + go;
  const ap = a + <usize>ch * stateBytes + go;
  const tiny = f32x4.splat(1e-30);
  const av = v128.load(ap);
  let hv = v128.load(hp);
  const accCol = accBuf + (<usize>(ch & 3) << 4);
  for (let t = 0; t < m; t++) {
    const dt = load<f32>(delta + <usize>t * rowBytes + co);
    const bp = xdbl + <usize>t * xdblRow + (<usize>dtRank << 2) + go;
    const dA = expNonPositive(f32x4.mul(f32x4.splat(dt), av));
    hv = madd(dA, hv, f32x4.mul(f32x4.splat(dt * load<f32>(xc + <usize>t * rowBytes + co)), v128.load(bp)));
    // A state with no input decays geometrically into denormals, which x86 multiplies ~100× slower and WASM
    // cannot flush: zero it below 1e-30, where it no longer moves any output.
    hv = v128.and(hv, f32x4.ge(f32x4.abs(hv), tiny));
    const ap2 = accCol + (<usize>t << 6);
    const part = f32x4.mul(hv, v128.load(bp + stateBytes));
    v128.store(ap2, first ? part : f32x4.add(v128.load(ap2), part));
  }
  v128.store(hp, hv);
}

/** 16 states in four registers (the shipped models' d_state): one pass over the rows per channel. */
function scanChannel16(ch: i32, m: i32, a: usize, h: usize): void {
  const rowBytes = <usize>dInner << 2;
  const xdblRow = <usize>xdblWidth << 2;
  const co = <usize>ch << 2;
  const hp = h + (<usize>ch << 6);
  const ap = a + (<usize>ch << 6);
  const tiny = f32x4.splat(1e-30);
  const log2e = f32x4.splat(LOG2E); // exp(Δ·A) = 2^(Δ·A·log2 e)
  const a0 = f32x4.mul(v128.load(ap), log2e);
  const a1 = f32x4.mul(v128.load(ap, 16), log2e);
  const a2 = f32x4.mul(v128.load(ap, 32), log2e);
  const a3 = f32x4.mul(v128.load(ap, 48), log2e);
  let h0 = v128.load(hp);
  let h1 = v128.load(hp, 16);
  let h2 = v128.load(hp, 32);
  let h3 = v128.load(hp, 48);
  const accCol = accBuf + (<usize>(ch & 3) << 4);
  for (let t = 0; t < m; t++) {
    const dt = load<f32>(delta + <usize>t * rowBytes + co);
    const dtv = f32x4.splat(dt);
    const u = f32x4.splat(dt * load<f32>(xc + <usize>t * rowBytes + co));
    const bp = xdbl + <usize>t * xdblRow + (<usize>dtRank << 2);
    h0 = madd(exp2NonPositive(f32x4.mul(dtv, a0)), h0, f32x4.mul(u, v128.load(bp)));
    h1 = madd(exp2NonPositive(f32x4.mul(dtv, a1)), h1, f32x4.mul(u, v128.load(bp, 16)));
    h2 = madd(exp2NonPositive(f32x4.mul(dtv, a2)), h2, f32x4.mul(u, v128.load(bp, 32)));
    h3 = madd(exp2NonPositive(f32x4.mul(dtv, a3)), h3, f32x4.mul(u, v128.load(bp, 48)));
    let acc = f32x4.mul(h0, v128.load(bp, 64));
    acc = madd(h1, v128.load(bp, 80), acc);
    acc = madd(h2, v128.load(bp, 96), acc);
    acc = madd(h3, v128.load(bp, 112), acc);
    v128.store(accCol + (<usize>t << 6), acc);
  }
  // Zeroed below 1e-30 once per block (see scanStates): a decaying state spends at most one block as denormals.
  v128.store(hp, v128.and(h0, f32x4.ge(f32x4.abs(h0), tiny)));
  h1 = v128.and(h1, f32x4.ge(f32x4.abs(h1), tiny));
  h2 = v128.and(h2, f32x4.ge(f32x4.abs(h2), tiny));
  h3 = v128.and(h3, f32x4.ge(f32x4.abs(h3), tiny));
  v128.store(hp, h1, 16);
  v128.store(hp, h2, 32);
  v128.store(hp, h3, 48);
}

/** The selective scan of m rows, then y = (C·h + D·x) ⊙ SiLU(z). */
function scan(layer: i32, m: i32): void {
  const a = slot(layer, A);
  const h = slot(layer, SSM_STATE);
  const dSkip = slot(layer, D);
  const rowBytes = <usize>dInner << 2;
  for (let ch = 0; ch < dInner; ch++) {
    if (dState == 16) scanChannel16(ch, m, a, h);
    else for (let g = 0; g < dState; g += 4) scanStates(ch, g, m, g == 0, a, h);
    if ((ch & 3) != 3) continue;
    // Four channels done: their C·h sums as one vector per row.
    const c = <usize>(ch - 3) << 2;
    const dv = v128.load(dSkip + c);
    for (let t = 0; t < m; t++) {
      const acc = accBuf + (<usize>t << 6);
      const o = <usize>t * rowBytes + c;
      const sums = hsum4<f32>(v128.load(acc), v128.load(acc, 16), v128.load(acc, 32), v128.load(acc, 48));
      const y = madd(dv, v128.load(xc + o), sums);
      v128.store(yBuf + o, f32x4.mul(y, v128.load(zGate + o)));
    }
  }
}

/**
 * ‖Δ_t‖₂ over channels for each of `rows` residual rows into scores (f64), from the layer's current state, which it
 * leaves as it was: only in_proj's x half, the conv and x_proj's dt columns run.
 */
export function scoreLayer(layer: i32, resid: usize, rows: i32, scores: usize): void {
  windowFromState(layer);
  for (let b0 = 0; b0 < rows; b0 += BLOCK) {
    const n = min(BLOCK, rows - b0);
    normAndProject(layer, resid + (<usize>(b0 * dModel) << 2), n, false);
    convSilu(layer, n);
    timeStep(layer, n, false);
    for (let t = 0; t < n; t++) {
      let sum: f64 = 0;
      const row = delta + (<usize>(t * dInner) << 2);
      for (let c = 0; c < dInner; c++) {
        const v = <f64>load<f32>(row + (<usize>c << 2));
        sum += v * v;
      }
      store<f64>(scores + (<usize>(b0 + t) << 3), Math.sqrt(sum));
    }
  }
}

/**
 * The block over `rows` residual rows ([rows, dModel], updated in place). keepN > 0: only the rows listed at keep
 * (ascending i32) go on past the conv; they end up as the first keepN residual rows.
 */
export function runLayer(layer: i32, resid: usize, rows: i32, keep: usize, keepN: i32): void {
  windowFromState(layer);
  const rowBytes = <usize>dModel << 2;
  const innerBytes = <usize>dInner << 2;
  let kept = 0; // rows kept so far (the write cursor into resid)
  for (let b0 = 0; b0 < rows; b0 += BLOCK) {
    const n = min(BLOCK, rows - b0);
    normAndProject(layer, resid + <usize>b0 * rowBytes, n, true);
    convSilu(layer, n);
    let m = n;
    let out = resid + <usize>b0 * rowBytes;
    if (keepN > 0) {
      // Compact the kept rows of this block to its front (xc, z) and to the write cursor (resid): every target row
      // is at or before its source and already read, so moving in order overwrites nothing still needed.
      out = resid + <usize>kept * rowBytes;
      m = 0;
      while (kept < keepN) {
        const r = load<i32>(keep + (<usize>kept << 2));
        if (r >= b0 + n) break;
        const local = <usize>(r - b0);
        memory.copy(xc + <usize>m * innerBytes, xc + local * innerBytes, innerBytes);
        memory.copy(zGate + <usize>m * innerBytes, zGate + local * innerBytes, innerBytes);
        memory.copy(resid + <usize>kept * rowBytes, resid + <usize>r * rowBytes, rowBytes);
        m++;
        kept++;
      }
      if (m == 0) continue;
    }
    timeStep(layer, m, true);
    scan(layer, m);
    prepareInput(yBuf, dInner, dInner, m);
    project(slot(layer, OUT_PROJ), slot(layer, OUT_PROJ_SCALE), out, dModel, dModel, true);
  }
  windowToState(layer);
}
