// One Mamba block's mixer on the device (the step names follow mamba/reference/mixer.ts), for a prefill pass and a
// decode step alike: in_proj → (x, z); causal conv1d + SiLU (conv state = last d_conv pre-conv inputs); x_proj →
// (dt, B, C); Δ = softplus(dt_proj(dt) + bias); [DeciMamba: score, select, gather]; the selective scan; out_proj.
// What differs is `MixerScan`: 'chunked' (packed prompts: chunked scan kernels, carried states, DeciMamba) or 'step'
// (one row per sequence: conv_step and ssm_step_dt update the states in place). The layer loop is layers.ts.
import type { DevicePtr } from './bindings/driver.ts';
import { actBytes, type EngineCore } from './core.ts';
import type { DeviceLayer } from './device-weights.ts';
import { isFusedScan, type ScanKind, xDblWidth } from './memory-plan.ts';
import * as ops from './ops.ts';
import type { L2Range, SeqStates } from './ops-args.ts';
import type { ScanCarry, ScanChunkTables } from './ops-scan.ts';
import * as scanOps from './ops-scan.ts';
import * as stepOps from './ops-step.ts';
import { bcOffsets, dtProj, inProj, outProj, xProj } from './projections.ts';

/** Where one layer's mixer reads and writes (all device addresses). */
export interface MixerBuffers {
  normed: DevicePtr; // in: RMSNorm(residual) [rowsIn, dModel] act
  xz: DevicePtr; // [rowsIn, 2·dInner] act
  x: DevicePtr; // [rowsIn, dInner] act (post-conv)
  xDbl: DevicePtr; // [rowsIn, dtRank + 2·dState] act
  delta: DevicePtr; // [rowsIn, dInner] f32
  y: DevicePtr; // [rowsOut, dInner] act
  out: DevicePtr; // out: [rowsOut, dModel] f32 (the next block's `hidden`, or the residual stream when outAdds)
  /** out_proj adds into `out` (the residual stream) instead of writing it. */
  outAdds?: boolean;
}

export interface MixerRows {
  rowsIn: number;
  nSeq: number;
}

/** This layer's slice of each sequence's state; `init*` (a later segment of a long prompt) are carried in. */
export interface MixerStates {
  conv: SeqStates;
  ssm: SeqStates;
  initConv: SeqStates | null;
  initSsm: SeqStates | null;
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

/**
 * 'split': dt_softplus, then scan.cu's three kernels (and gathers when decimating); 'split-softplus': the same kernels
 * with Δ = softplus(dt + bias) formed in the first pass (no dt_softplus launch, DeciMamba scores from the raw dt);
 * 'split-staged': split-softplus with passes 1 and 3 reading their inputs through shared memory (scan-staged.cu);
 * 'fused': scan-fused.cu alone (one warp a channel); 'fused-t2': the same with two warps a channel (twice the
 * parallelism, for batch-1 prompts).
 */
export type { ScanKind } from './memory-plan.ts';

/**
 * A decode step's fused kernels (ops-step.ts): the residual stream, which the fused RMSNorm reads from one buffer of a
 * pair and writes to the other (every block reads it).
 */
export interface FusedStep {
  /** `embed`: the first layer's token ids and embedding table (the residual stream starts from those rows). */
  norm: {
    hidden: DevicePtr;
    residualIn: DevicePtr;
    residualOut: DevicePtr;
    embed: ops.EmbedRows | null;
  };
}

/** How the mma step gets x_proj (StepScratch.mma). */
export type MmaStep = 'partials' | 'gemm';

/**
 * A decode step's scratch: the fused step's x_proj partial sums (ops-step.ts stepXBlocks × batch × dbl f32), whether
 * the step's own kernels launch as programmatic dependents (sm_90+, LaunchShape.programmatic), and the sequences a
 * thread of the unfused step's ssm_step_dt steps (ops.ts ssmStepDt).
 */
export interface StepScratch {
  partial: DevicePtr;
  programmatic: boolean;
  ssmSeqs: ops.SsmStepSeqs;
  /**
   * The unfused step's in_proj and conv_step as one tensor-core launch (ops-step.ts stepInProjConvMma), with x_proj's
   * partial sums added up by step_dt_ssm ('partials') or the x_proj GEMM and ssm_step_dt after it ('gemm'); null: off.
   */
  mma: MmaStep | null;
  /** Sequences a block of the mma step takes (ops-step.ts stepInProjConvMma). */
  mmaSeqSpan: number;
  /** x_proj and out_proj on the tensor cores as programmatic dependents (ops-step.ts stepGemmMma), not cuBLAS. */
  mmaGemms: boolean;
}

/** How a layer's rows are convolved and scanned: a decode step, or a prefill pass over packed prompts. */
export type MixerScan =
  | {
      kind: 'step';
      scratch: StepScratch;
      fused: FusedStep | null;
      /**
       * The next layer's weights, which the layer asks L2 for (the fused step's first launch, or the unfused ssm_step_dt,
       * whose conv_step also asks for the scan's states); null: no prefetch.
       */
      prefetch: L2Range | null;
    }
  | {
      kind: 'chunked';
      /** Row → sequence and sequence starts of the rows entering the layer. */
      tables: ops.RowTables;
      chunks: ScanChunkTables;
      scratch: { chunkH: DevicePtr; chunkDeltaSum: DevicePtr };
      decimation: MixerDecimation | null;
      /** the split kinds' pass 2 (ops-scan.ts selectiveScan) */
      carry?: ScanCarry;
      scan: ScanKind;
    };

type ChunkedScan = Extract<MixerScan, { kind: 'chunked' }>;

export function mambaMixer(
  core: EngineCore,
  layer: DeviceLayer,
  b: MixerBuffers,
  rows: MixerRows,
  states: MixerStates,
  mode: MixerScan,
): void {
  const { kernels: k, config } = core;
  const { dInner } = config;
  const n = rows.rowsIn;
  if (mode.kind === 'step' && mode.fused) {
    fusedStep(core, layer, b, n, states.conv, states.ssm, mode.scratch, mode.fused, mode.prefetch);
    return;
  }
  if (mode.kind === 'step' && mode.scratch.mma) {
    mmaStep(core, layer, b, n, states, mode.scratch.mma, mode.scratch, mode.prefetch);
    return;
  }

  // in_proj → (x, z)
  inProj(core, layer, b.normed, b.xz, n);
  const xPre = { ptr: b.xz, ld: 2 * dInner };
  const conv = { weight: layer.convWeight, bias: layer.convBias, out: b.x, dInner };
  if (mode.kind === 'step') {
    // conv + SiLU, x_proj; the scan forms Δ = softplus(dt_proj(dt) + bias) itself
    const { programmatic, ssmSeqs } = mode.scratch;
    // the scan's states, which ssm_step_dt reads two launches later
    const prefetchStates = mode.prefetch && seqStatesRange(states.ssm, dInner * config.dState * 4, n);
    ops.convStep(k, { ...conv, x: xPre, state: states.conv, batch: n, programmatic, prefetch: prefetchStates });
    stepXProj(core, layer, b, n, mode.scratch);
    const xDbl = { ptr: b.xDbl, ld: xDblWidth(config) };
    const { x, z } = scanInputs(core, layer, b);
    const [dtProjT, dtBias, aLog2, dSkip] = [layer.dtProjT, layer.dtProjBias, layer.aLog2, layer.d];
    const { dState, dtRank } = config;
    const scanArgs = { x: x.ptr, xDbl, z, dtProjT, dtBias, aLog2, dSkip, state: states.ssm, y: b.y };
    const prefetch = mode.prefetch;
    ops.ssmStepDt(k, { ...scanArgs, batch: n, dInner, dState, dtRank, seqs: ssmSeqs, programmatic, prefetch });
    stepOutProj(core, layer, b, n, mode.scratch);
    return;
  }

  // causal depthwise conv1d + SiLU; the conv state is always the last d_conv pre-conv inputs (before any decimation)
  ops.causalConv1dSilu(k, { ...conv, x: xPre, tables: mode.tables, init: states.initConv, rows: n });
  const { seqStart } = mode.tables;
  ops.convStateCapture(k, { x: xPre, seqStart, init: states.initConv, out: states.conv, nSeq: rows.nSeq, dInner });

  // x_proj → (dt, B, C); Δ = softplus(dt_proj(dt) + bias) (every kind but 'split' forms softplus where it reads dt)
  xProj(core, layer, b.x, b.xDbl, n);
  dtProj(core, layer, b.xDbl, b.delta, n);
  const rawDt = mode.scan !== 'split';
  if (!rawDt) ops.timeStep(k, b.delta, layer.dtProjBias, n, dInner);

  // the selective scan → y over the rows that stay
  const inputs = scanInputs(core, layer, b);
  let rowsOut = n;
  if (isFusedScan(mode.scan)) {
    rowsOut = fusedScan(core, layer, inputs, b.y, rows, states, mode);
  } else {
    rowsOut = splitScan(core, inputs, rawDt ? layer.dtProjBias : null, b.y, rows, states, mode);
  }
  outProj(core, layer, b.y, b.out, rowsOut, b.outAdds);
}

/**
 * The same block for one token per sequence in three launches: RMSNorm + in_proj + conv + SiLU + x_proj's partial
 * sums; dt_proj + softplus + the one-step scan; out_proj. kernels/step-fused.cu has why.
 */
function fusedStep(
  core: EngineCore,
  layer: DeviceLayer,
  b: MixerBuffers,
  batch: number,
  conv: SeqStates,
  ssm: SeqStates,
  scratch: StepScratch,
  f: FusedStep,
  prefetch: L2Range | null,
): void {
  const k = core.kernels;
  const { dModel, dInner, dState, dtRank, normEpsilon } = core.config;
  const { hidden, residualIn, residualOut, embed } = f.norm;
  const { partial, programmatic } = scratch;
  const [weight, bias, convWeight, convBias] = [layer.inProj, layer.inProjBias, layer.convWeight, layer.convBias];
  const inputs = { hidden, residualIn, residualOut, embed, norm: layer.norm, eps: normEpsilon, weight, bias };
  const convArgs = { state: conv, convWeight, convBias, x: b.x, xProj: layer.xProj, partial };
  const dbl = xDblWidth(core.config);
  stepOps.stepInProjConv(k, { ...inputs, ...convArgs, xz: b.xz, batch, dModel, dInner, dbl, programmatic, prefetch });
  const { z } = scanInputs(core, layer, b);
  const [dtProjT, dtBias, aLog2, dSkip] = [layer.dtProjT, layer.dtProjBias, layer.aLog2, layer.d];
  const scanArgs = { partial, x: b.x, z, dtProjT, dtBias, aLog2, dSkip, state: ssm, y: b.y };
  stepOps.stepDtSsm(k, { ...scanArgs, batch, dInner, dState, dtRank, programmatic });
  const out = { y: b.y, weight: layer.outProj, bias: layer.outProjBias, out: b.out };
  stepOps.stepOutProj(k, { ...out, batch, dInner, n: dModel, programmatic });
}

/**
 * The same block after add_rmsnorm: in_proj on the tensor cores + conv + SiLU (+ x_proj's partial sums); then
 * step_dt_ssm as in the fused step ('partials', three launches) or the x_proj GEMM and ssm_step_dt ('gemm', four);
 * the out_proj GEMM. kernels/step-mma.cu has why.
 */
function mmaStep(
  core: EngineCore,
  layer: DeviceLayer,
  b: MixerBuffers,
  batch: number,
  states: MixerStates,
  form: MmaStep,
  scratch: StepScratch,
  prefetch: L2Range | null,
): void {
  const k = core.kernels;
  const { dModel, dInner, dState, dtRank } = core.config;
  const { programmatic, ssmSeqs } = scratch;
  const partial = form === 'partials' ? scratch.partial : null;
  const [weight, bias, convWeight, convBias] = [layer.inProj, layer.inProjBias, layer.convWeight, layer.convBias];
  const dbl = xDblWidth(core.config);
  const conv = { state: states.conv, convWeight, convBias, x: b.x, xProj: layer.xProj, partial };
  const inProjArgs = { normed: b.normed, weight, bias, xz: b.xz, ...conv, batch, dModel, dInner, dbl };
  stepOps.stepInProjConvMma(k, { ...inProjArgs, programmatic, prefetch, seqSpan: scratch.mmaSeqSpan });
  const { x, z } = scanInputs(core, layer, b);
  const [dtProjT, dtBias, aLog2, dSkip] = [layer.dtProjT, layer.dtProjBias, layer.aLog2, layer.d];
  const scanArgs = { x: x.ptr, z, dtProjT, dtBias, aLog2, dSkip, state: states.ssm, y: b.y };
  if (partial !== null) {
    stepOps.stepDtSsm(k, { ...scanArgs, partial, batch, dInner, dState, dtRank, programmatic });
  } else {
    stepXProj(core, layer, b, batch, scratch);
    const xDbl = { ptr: b.xDbl, ld: dbl };
    ops.ssmStepDt(k, { ...scanArgs, xDbl, batch, dInner, dState, dtRank, seqs: ssmSeqs, programmatic });
  }
  stepOutProj(core, layer, b, batch, scratch);
}

/** A decode step's x_proj: cuBLAS's GEMM, or step_gemm_mma where the session asks (DecodeSession.mmaGemms). */
function stepXProj(core: EngineCore, layer: DeviceLayer, b: MixerBuffers, batch: number, scratch: StepScratch): void {
  if (!scratch.mmaGemms) {
    xProj(core, layer, b.x, b.xDbl, batch);
    return;
  }
  const { dInner } = core.config;
  const [input, weight, out, n] = [b.x, layer.xProj, b.xDbl, xDblWidth(core.config)];
  const { programmatic } = scratch;
  stepOps.stepGemmMma(core.kernels, {
    input,
    weight,
    bias: null,
    out,
    outF32: false,
    batch,
    k: dInner,
    n,
    programmatic,
    label: 'mma_x_proj',
  });
}

/** A decode step's out_proj (+ bias) → out f32, as stepXProj chooses. */
function stepOutProj(core: EngineCore, layer: DeviceLayer, b: MixerBuffers, batch: number, scratch: StepScratch): void {
  if (!scratch.mmaGemms) {
    outProj(core, layer, b.y, b.out, batch);
    return;
  }
  const { dInner, dModel } = core.config;
  const [input, weight, bias, out] = [b.y, layer.outProj, layer.outProjBias, b.out];
  const { programmatic } = scratch;
  stepOps.stepGemmMma(core.kernels, {
    input,
    weight,
    bias,
    out,
    outF32: true,
    batch,
    k: dInner,
    n: dModel,
    programmatic,
    label: 'mma_out_proj',
  });
}

/** `count` sequences' states of one layer as an L2 range (`bytes` each); null where they do not lie 16-byte aligned. */
function seqStatesRange(s: SeqStates, bytes: number, count: number): L2Range | null {
  const stride = s.seqStride * 4;
  const whole = bytes - (bytes % 16);
  return s.ptr % 16 === 0 && stride % 16 === 0 && whole > 0 ? { ptr: s.ptr, bytes: whole, stride, count } : null;
}

/** The scan's operands as they lie after x_proj: x, Δ, z (xz's second half), B and C (columns of xDbl). */
function scanInputs(core: EngineCore, layer: DeviceLayer, b: MixerBuffers): scanOps.ScanInputs {
  const { dInner } = core.config;
  const bc = bcOffsets(core);
  const dbl = xDblWidth(core.config);
  return {
    x: { ptr: b.x, ld: dInner },
    delta: { ptr: b.delta, ld: dInner },
    z: { ptr: b.xz + dInner * actBytes(core), ld: 2 * dInner },
    b: { ptr: b.xDbl + bc.b, ld: dbl },
    c: { ptr: b.xDbl + bc.c, ld: dbl },
    aLog2: layer.aLog2,
    dSkip: layer.d,
  };
}

/**
 * scan.cu's chunked scan; DeciMamba first sub-samples x, Δ, z, B and C into the gathered buffers. dtBias (nullable):
 * `delta` holds the raw dt, which DeciMamba scores with the bias and the first pass turns into Δ.
 */
function splitScan(
  core: EngineCore,
  full: scanOps.ScanInputs,
  dtBias: DevicePtr | null,
  y: DevicePtr,
  rows: MixerRows,
  states: MixerStates,
  mode: ChunkedScan,
): number {
  const { kernels: k, config } = core;
  const { dInner, dState } = config;
  const ab = actBytes(core);
  let scanRows = rows.rowsIn;
  let inputs = full;
  const d = mode.decimation;
  if (d) {
    chooseKept(core, d, rows, mode.tables, inputs.delta, dtBias);
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
    dtBias,
    chunks: mode.chunks,
    scratch: mode.scratch,
    h0: states.initSsm,
    hOut: states.ssm,
    y: { ptr: y, ld: dInner },
    nSeq: rows.nSeq,
    dInner,
    dState,
    staged: mode.scan === 'split-staged',
    carry: mode.carry,
  });
  return scanRows;
}

/**
 * The fused path: `delta` holds the raw dt (softplus is formed where it is read). DeciMamba scores from it, selects,
 * and the scan reads the kept rows through srcRow, so only the residual and positions are gathered.
 */
function fusedScan(
  core: EngineCore,
  layer: DeviceLayer,
  inputs: scanOps.ScanInputs,
  y: DevicePtr,
  rows: MixerRows,
  states: MixerStates,
  mode: ChunkedScan,
): number {
  const { dInner } = core.config;
  let scanRows = rows.rowsIn;
  let seqStart = mode.tables.seqStart;
  let rowIdx: DevicePtr | null = null;
  const d = mode.decimation;
  if (d) {
    chooseKept(core, d, rows, mode.tables, inputs.delta, layer.dtProjBias);
    scanRows = d.rowsOut;
    seqStart = d.newSeqStart;
    rowIdx = d.srcRow;
    gatherAlso(core, d);
  }
  scanOps.fusedScan(core.kernels, {
    inputs,
    dtBias: layer.dtProjBias,
    seqStart,
    rowIdx,
    h0: states.initSsm,
    hOut: states.ssm,
    y: { ptr: y, ld: dInner },
    nSeq: rows.nSeq,
    dInner,
    twoWarps: mode.scan === 'fused-t2',
  });
  return scanRows;
}

/** DeciMamba's choice: ‖Δ‖ scores (from the raw dt plus `dtBias` where the scan forms Δ), then the kept rows. */
function chooseKept(
  core: EngineCore,
  d: MixerDecimation,
  rows: MixerRows,
  tables: ops.RowTables,
  delta: ops.MatView,
  dtBias: DevicePtr | null,
): void {
  const k = core.kernels;
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
    seqStart: tables.seqStart,
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
