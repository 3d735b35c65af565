// One Mamba-1 block's mixer, written once for both prefill (L tokens, zero state) and step (1 token, state in).
import type { LayerState, LayerWeights, MambaConfig } from '../engine.ts';
import { causalConv1dSilu, columns, gatherRows, linear, selectiveScan, softplus } from './ops.ts';

/** A layer's weights plus what is derived once from them. */
export interface PreparedLayer {
  weights: LayerWeights;
  /** A = −exp(A_log), [dInner, dState]. */
  a: Float64Array;
}

export function prepareLayer(weights: LayerWeights): PreparedLayer {
  const a = new Float64Array(weights.aLog.data.length);
  for (let i = 0; i < a.length; i++) a[i] = -Math.exp(weights.aLog.data[i]!);
  return { weights, a };
}

/**
 * Picks the rows that survive decimation, given Δ ([rows, dInner], softplus applied), or null to keep all.
 * Only the decimating layers of a prefill get one.
 */
export type RowChooser = (delta: Float32Array, rows: number) => Int32Array | null;

export interface MixerOutput {
  out: Float32Array; // [rowsOut, dModel]
  rowsOut: number;
  kept: Int32Array | null; // rows kept when decimation dropped some
  state: LayerState;
}

/** Δ = softplus(dt_proj(dt) + bias) */
function timeStep(dtLow: Float32Array, rows: number, w: LayerWeights, dInner: number): Float32Array {
  const delta = linear(dtLow, rows, w.dtProjWeight.data, dInner, w.dtProjBias.data);
  for (let i = 0; i < delta.length; i++) delta[i] = softplus(delta[i]!);
  return delta;
}

export function mambaMixer(
  layer: PreparedLayer,
  config: MambaConfig,
  u: Float32Array, // RMSNorm(residual), [rows, dModel]
  rows: number,
  state: LayerState,
  chooseRows?: RowChooser,
): MixerOutput {
  const { dModel, dInner, dState, dtRank, dConv } = config;
  const w = layer.weights;

  // in_proj → (x, z)
  const xz = linear(u, rows, w.inProj.data, 2 * dInner, w.inProjBias?.data ?? null);
  const xPreConv = columns(xz, rows, 2 * dInner, 0, dInner);
  let z = columns(xz, rows, 2 * dInner, dInner, dInner);

  // causal depthwise conv1d + SiLU; the conv state is always the last d_conv pre-conv inputs (before any decimation)
  const conv = causalConv1dSilu(xPreConv, rows, state.conv, w.convWeight.data, w.convBias?.data ?? null, dInner, dConv);
  let x = conv.out;

  // x_proj → (dt, B, C); Δ = softplus(dt_proj(dt) + bias)
  const xDbl = linear(x, rows, w.xProj.data, dtRank + 2 * dState);
  let b = columns(xDbl, rows, dtRank + 2 * dState, dtRank, dState);
  let c = columns(xDbl, rows, dtRank + 2 * dState, dtRank + dState, dState);
  let delta = timeStep(columns(xDbl, rows, dtRank + 2 * dState, 0, dtRank), rows, w, dInner);

  // DeciMamba: sub-sample x, Δ, B, C and z before the scan
  const kept = chooseRows ? chooseRows(delta, rows) : null;
  let scanRows = rows;
  if (kept) {
    x = gatherRows(x, dInner, kept);
    delta = gatherRows(delta, dInner, kept);
    b = gatherRows(b, dState, kept);
    c = gatherRows(c, dState, kept);
    z = gatherRows(z, dInner, kept);
    scanRows = kept.length;
  }

  const h = state.ssm.slice();
  const y = selectiveScan(x, delta, layer.a, b, c, w.d.data, z, h, scanRows, dInner, dState);
  const out = linear(y, scanRows, w.outProj.data, dModel, w.outProjBias?.data ?? null);
  return { out, rowsOut: scanRows, kept, state: { conv: conv.state, ssm: h } };
}
