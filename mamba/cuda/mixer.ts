// One Mamba block's mixer on the device for a packed batch (the step names follow mamba/reference/mixer.ts):
// in_proj → (x, z); causal conv1d + SiLU (conv state = last d_conv pre-conv inputs); x_proj → (dt, B, C);
// Δ = softplus(dt_proj(dt) + bias); DeciMamba: score, select, gather x/Δ/z/B/C; the selective scan; out_proj.
import type { DevicePtr } from './bindings/driver.ts';
import { actBytes, type EngineCore } from './core.ts';
import type { DeviceLayer } from './device-weights.ts';
import * as ops from './ops.ts';
import type { ScanChunkTables } from './ops-scan.ts';
import * as scanOps from './ops-scan.ts';
import { xDblWidth } from './memory-plan.ts';
import { bcOffsets, dtProj, inProj, outProj, xProj } from './projections.ts';

/** Where one layer's mixer reads and writes (all device addresses). */
export interface MixerBuffers {
  normed: DevicePtr; // in: RMSNorm(residual) [rowsIn, dModel] act
  xz: DevicePtr; // [rowsIn, 2·dInner] act
  x: DevicePtr; // [rowsIn, dInner] act (post-conv)
  xDbl: DevicePtr; // [rowsIn, dtRank + 2·dState] act
  delta: DevicePtr; // [rowsIn, dInner] f32
  y: DevicePtr; // [rowsOut, dInner] act
  out: DevicePtr; // out: [rowsOut, dModel] f32 (the next block's `hidden`)
  chunkH: DevicePtr;
  chunkDeltaSum: DevicePtr;
}

export interface MixerRows {
  rowsIn: number;
  nSeq: number;
  rowSeq: DevicePtr;
  seqStart: DevicePtr;
}

/** DeciMamba's part of a layer: scores → kept rows → gathered scan inputs (only when some sequence drops tokens). */
export interface MixerDecimation {
  rowsOut: number;
  contextLen: DevicePtr;
  keep: DevicePtr;
  newSeqStart: DevicePtr;
  scores: DevicePtr;
  srcRow: DevicePtr;
  status: DevicePtr;
  gathered: { x: DevicePtr; delta: DevicePtr; z: DevicePtr; bc: DevicePtr };
  /** Extra rows that follow the tokens (the residual stream, original positions). */
  alsoGather: { src: DevicePtr; dst: DevicePtr; width: number; elementBytes: 2 | 4; label: string }[];
}

export interface MixerStates {
  conv: { ptr: DevicePtr; seqStride: number };
  ssm: { ptr: DevicePtr; seqStride: number };
  initConv: { ptr: DevicePtr; seqStride: number } | null;
  initSsm: { ptr: DevicePtr; seqStride: number } | null;
}

/**
 * 'split': dt_softplus, then scan.cu's three kernels (and gathers when decimating); 'fused': scan-fused.cu alone
 * (one warp a channel); 'fused-t2': the same with two warps a channel (twice the parallelism, for batch-1 prompts).
 */
export type ScanKind = 'split' | 'fused' | 'fused-t2';

export function mambaMixer(
  core: EngineCore,
  layer: DeviceLayer,
  b: MixerBuffers,
  rows: MixerRows,
  chunks: ScanChunkTables,
  states: MixerStates,
  decimation: MixerDecimation | null,
  scan: ScanKind = 'split',
): void {
  const { kernels: k, config } = core;
  const { dInner, dState } = config;
  const ab = actBytes(core);
  const dbl = xDblWidth(config);
  const n = rows.rowsIn;

  // in_proj → (x, z)
  inProj(core, layer, b.normed, b.xz, n);
  const xPre = { ptr: b.xz, ld: 2 * dInner };
  const z = { ptr: b.xz + dInner * ab, ld: 2 * dInner };

  // causal depthwise conv1d + SiLU; the conv state is always the last d_conv pre-conv inputs (before any decimation)
  const tables = { rowSeq: rows.rowSeq, seqStart: rows.seqStart };
  ops.causalConv1dSilu(k, {
    x: xPre,
    weight: layer.convWeight,
    bias: layer.convBias,
    tables,
    init: states.initConv,
    out: b.x,
    rows: n,
    dInner,
  });
  ops.convStateCapture(k, {
    x: xPre,
    seqStart: rows.seqStart,
    init: states.initConv,
    out: states.conv.ptr,
    outSeqStride: states.conv.seqStride,
    nSeq: rows.nSeq,
    dInner,
  });

  // x_proj → (dt, B, C); Δ = softplus(dt_proj(dt) + bias)
  xProj(core, layer, b.x, b.xDbl, n);
  dtProj(core, layer, b.xDbl, b.delta, n);
  if (scan !== 'split') {
    fusedTail(core, layer, b, rows, states, decimation, scan === 'fused-t2');
    return;
  }
  ops.timeStep(k, b.delta, layer.dtProjBias, n, dInner);

  const bc = bcOffsets(core);
  let scanRows = n;
  let inputs: scanOps.ScanInputs = {
    x: { ptr: b.x, ld: dInner },
    delta: { ptr: b.delta, ld: dInner },
    z,
    b: { ptr: b.xDbl + bc.b, ld: dbl },
    c: { ptr: b.xDbl + bc.c, ld: dbl },
    aLog2: layer.aLog2,
    dSkip: layer.d,
  };

  // DeciMamba: sub-sample x, Δ, B, C and z before the scan
  if (decimation) {
    const d = decimation;
    chooseKept(core, d, rows, inputs.delta, null);
    scanRows = d.rowsOut;
    const g = d.gathered;
    const gather = (src: ops.MatView, dst: ops.MatView, width: number, elementBytes: 2 | 4, label: string) =>
      scanOps.gatherRows(k, { src, dst, width, elementBytes, srcRow: d.srcRow, nRows: scanRows }, label);
    gather(inputs.x, { ptr: g.x, ld: dInner }, dInner, ab, 'gather_x');
    gather(inputs.delta, { ptr: g.delta, ld: dInner }, dInner, 4, 'gather_delta');
    gather(inputs.z, { ptr: g.z, ld: dInner }, dInner, ab, 'gather_z');
    gather(inputs.b, { ptr: g.bc, ld: 2 * dState }, 2 * dState, ab, 'gather_bc');
    gatherAlso(core, d);
    inputs = {
      ...inputs,
      x: { ptr: g.x, ld: dInner },
      delta: { ptr: g.delta, ld: dInner },
      z: { ptr: g.z, ld: dInner },
      b: { ptr: g.bc, ld: 2 * dState },
      c: { ptr: g.bc + dState * ab, ld: 2 * dState },
    };
  }

  scanOps.selectiveScan(k, {
    inputs,
    chunks,
    scratch: { chunkH: b.chunkH, chunkDeltaSum: b.chunkDeltaSum },
    h0: states.initSsm,
    hOut: states.ssm,
    y: { ptr: b.y, ld: dInner },
    nSeq: rows.nSeq,
    dInner,
    dState,
  });
  outProj(core, layer, b.y, b.out, scanRows);
}

/**
 * The fused path after dt_proj: `delta` holds the raw dt (softplus is formed where it is read). DeciMamba scores
 * from it, selects, and the scan reads the kept rows through srcRow, so only the residual and positions are gathered.
 */
function fusedTail(
  core: EngineCore,
  layer: DeviceLayer,
  b: MixerBuffers,
  rows: MixerRows,
  states: MixerStates,
  decimation: MixerDecimation | null,
  twoWarps: boolean,
): void {
  const { kernels: k, config } = core;
  const { dInner } = config;
  const ab = actBytes(core);
  const bc = bcOffsets(core);
  const dbl = xDblWidth(config);
  let scanRows = rows.rowsIn;
  let seqStart = rows.seqStart;
  let rowIdx: DevicePtr | null = null;
  if (decimation) {
    const d = decimation;
    chooseKept(core, d, rows, { ptr: b.delta, ld: dInner }, layer.dtProjBias);
    scanRows = d.rowsOut;
    seqStart = d.newSeqStart;
    rowIdx = d.srcRow;
    gatherAlso(core, d);
  }
  scanOps.fusedScan(k, {
    inputs: {
      x: { ptr: b.x, ld: dInner },
      delta: { ptr: b.delta, ld: dInner },
      z: { ptr: b.xz + dInner * ab, ld: 2 * dInner },
      b: { ptr: b.xDbl + bc.b, ld: dbl },
      c: { ptr: b.xDbl + bc.c, ld: dbl },
      aLog2: layer.aLog2,
      dSkip: layer.d,
    },
    dtBias: layer.dtProjBias,
    seqStart,
    rowIdx,
    h0: states.initSsm,
    hOut: states.ssm,
    y: { ptr: b.y, ld: dInner },
    nSeq: rows.nSeq,
    dInner,
    twoWarps,
  });
  outProj(core, layer, b.y, b.out, scanRows);
}

/** DeciMamba's choice: ‖Δ‖ scores (from the raw dt plus `dtBias` on the fused path), then the kept rows. */
function chooseKept(
  core: EngineCore,
  d: MixerDecimation,
  rows: MixerRows,
  delta: ops.MatView,
  dtBias: DevicePtr | null,
): void {
  const k = core.kernels;
  const tables = { rowSeq: rows.rowSeq, seqStart: rows.seqStart };
  const { contextLen, scores } = d;
  scanOps.deltaScores(k, {
    delta,
    bias: dtBias,
    tables,
    contextLen,
    scores,
    rows: rows.rowsIn,
    dInner: core.config.dInner,
  });
  scanOps.selectKept(k, {
    scores,
    seqStart: rows.seqStart,
    contextLen,
    keep: d.keep,
    newStart: d.newSeqStart,
    srcRow: d.srcRow,
    status: d.status,
    nSeq: rows.nSeq,
  });
}

/** Gathers the kept rows of what follows the tokens besides the scan inputs (the residual stream, positions). */
function gatherAlso(core: EngineCore, d: MixerDecimation): void {
  for (const extra of d.alsoGather) {
    const [src, dst] = [
      { ptr: extra.src, ld: extra.width },
      { ptr: extra.dst, ld: extra.width },
    ];
    const { width, elementBytes } = extra;
    scanOps.gatherRows(
      core.kernels,
      { src, dst, width, elementBytes, srcRow: d.srcRow, nRows: d.rowsOut },
      extra.label,
    );
  }
}
