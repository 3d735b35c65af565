// The four GEMMs of a Mamba block and the lm_head (the step names of mamba/reference/mixer.ts), written once for prefill (mixer.ts,
// every row of a packed batch) and decode (decode.ts, one row per sequence): the same launches in the same order.
import type { DevicePtr } from './bindings/driver.ts';
import { actBytes, actType, type EngineCore } from './core.ts';
import type { DeviceLayer } from './device-weights.ts';
import { xDblWidth } from './memory-plan.ts';
import * as ops from './ops.ts';

/** y[rows, n] = x[rows, k] · wᵀ, the activations in the engine's precision unless `f32Out`. */
function gemm(
  core: EngineCore,
  x: ops.MatView,
  w: ops.MatView,
  y: ops.MatView,
  shape: { rows: number; k: number; n: number },
  f32Out: boolean,
  label: string,
  beta = 0,
): void {
  const xType = actType(core);
  const types = { xType, wType: core.weights.gemmType, yType: f32Out ? 'f32' : xType } as const;
  ops.linear(core.device, { x, w, y, ...shape, ...types, beta }, label);
}

/** in_proj → xz [rows, 2·dInner] (x then z), with its bias when the model has one. */
export function inProj(core: EngineCore, layer: DeviceLayer, normed: DevicePtr, xz: DevicePtr, rows: number): void {
  const { dModel, dInner } = core.config;
  const out = { ptr: xz, ld: 2 * dInner };
  gemm(
    core,
    { ptr: normed, ld: dModel },
    { ptr: layer.inProj, ld: dModel },
    out,
    {
      rows,
      k: dModel,
      n: 2 * dInner,
    },
    false,
    'gemm_in_proj',
  );
  if (layer.inProjBias !== null) ops.addBias(core.kernels, out, layer.inProjBias, rows, 2 * dInner, true);
}

/** x_proj → xDbl [rows, dtRank + 2·dState] = (dt, B, C). */
export function xProj(core: EngineCore, layer: DeviceLayer, x: DevicePtr, xDbl: DevicePtr, rows: number): void {
  const { dInner } = core.config;
  const dbl = xDblWidth(core.config);
  const shape = { rows, k: dInner, n: dbl };
  gemm(
    core,
    { ptr: x, ld: dInner },
    { ptr: layer.xProj, ld: dInner },
    { ptr: xDbl, ld: dbl },
    shape,
    false,
    'gemm_x_proj',
  );
}

/** dt_proj(dt) → delta [rows, dInner] f32 (the bias and softplus come after, where each path wants them). */
export function dtProj(core: EngineCore, layer: DeviceLayer, xDbl: DevicePtr, delta: DevicePtr, rows: number): void {
  const { dInner, dtRank } = core.config;
  const dbl = xDblWidth(core.config);
  const [x, w, y] = [
    { ptr: xDbl, ld: dbl },
    { ptr: layer.dtProjWeight, ld: dtRank },
    { ptr: delta, ld: dInner },
  ];
  gemm(core, x, w, y, { rows, k: dtRank, n: dInner }, true, 'gemm_dt_proj');
}

/** out_proj(y) → out [rows, dModel] f32 (the next block's `hidden`), with its bias when the model has one. */
/** out_proj → out [rows, dModel] f32; `accumulate`: out += (the residual stream, so no separate add reads it). */
export function outProj(
  core: EngineCore,
  layer: DeviceLayer,
  y: DevicePtr,
  out: DevicePtr,
  rows: number,
  accumulate = false,
): void {
  const { dModel, dInner } = core.config;
  const dst = { ptr: out, ld: dModel };
  gemm(
    core,
    { ptr: y, ld: dInner },
    { ptr: layer.outProj, ld: dInner },
    dst,
    { rows, k: dInner, n: dModel },
    true,
    'gemm_out_proj',
    accumulate ? 1 : 0,
  );
  if (layer.outProjBias !== null) ops.addBias(core.kernels, dst, layer.outProjBias, rows, dModel, false);
}

/** lm_head over RMSNorm_f's rows → logits [rows, vocab] f32. */
export function lmHead(core: EngineCore, headNormed: DevicePtr, logits: DevicePtr, rows: number): void {
  const { dModel, vocabSize } = core.config;
  const [x, w, y] = [
    { ptr: headNormed, ld: dModel },
    { ptr: core.weights.lmHead, ld: dModel },
    { ptr: logits, ld: vocabSize },
  ];
  gemm(core, x, w, y, { rows, k: dModel, n: vocabSize }, true, 'gemm_lm_head');
}

/** Where the B and C columns of xDbl start (act elements), for the scans. */
export function bcOffsets(core: EngineCore): { b: number; c: number } {
  const { dtRank, dState } = core.config;
  const ab = actBytes(core);
  return { b: dtRank * ab, c: (dtRank + dState) * ab };
}
