// Launchers for the selective scan (two-pass chunked and one-pass fused) and DeciMamba's decimation kernels
// (Δ scores, top-K row selection, row gathers); split from ops.ts, which keeps the per-layer and decode launchers.
import type { DevicePtr, LaunchShape } from './bindings/driver.ts';
import type { KernelSet } from './device.ts';
import {
  CARRY_LANES,
  CARRY_SEGMENTS,
  FUSED_CHANNELS,
  FUSED_T2_CHANNELS,
  SCAN_THREADS,
  SELECT_THREADS,
} from './kernels/manifest.ts';
import { i32, i64, mat, ptr, rowThreads, type SeqStates, states, threadPerElement } from './ops-args.ts';
import type { MatView, RowTables } from './ops.ts';

export interface ScanChunkTables {
  chunkStart: DevicePtr;
  chunkLen: DevicePtr;
  seqFirstChunk: DevicePtr;
  count: number;
}

export type ScanCarry = 'serial' | 'segmented';
/** Measured faster at every shape (H100, cuda-scan-staged.json): scan_carry 2.36 → 0.94 ms at 130m bf16 32K. */
export const DEFAULT_SCAN_CARRY: ScanCarry = 'segmented';

/** The kernels of the split scan's passes 1 and 3: scan.cu's, or scan-staged.cu's (inputs through shared memory). */
export function scanPassKernels(staged: boolean) {
  return staged
    ? ({ state: 'scan_chunk_state_staged', output: 'scan_chunk_output_staged' } as const)
    : ({ state: 'scan_chunk_state', output: 'scan_chunk_output' } as const);
}

export interface ScanInputs {
  x: MatView;
  delta: MatView;
  z: MatView;
  b: MatView;
  c: MatView;
  aLog2: DevicePtr;
  dSkip: DevicePtr;
}

/**
 * The two-pass chunked selective scan (scan.cu): y and each sequence's final state. dtBias (nullable): inputs.delta
 * holds dt_proj's raw output, which the first pass turns into Δ = softplus(dt + dtBias) in place. staged: passes 1
 * and 3 are scan-staged.cu's (the same arithmetic, inputs through shared memory). carry: pass 2 as one thread a
 * (sequence, channel, state) walking every chunk ('serial', scan_carry) or a warp a segment of them ('segmented').
 */
export function selectiveScan(
  k: KernelSet,
  a: {
    inputs: ScanInputs;
    dtBias: DevicePtr | null;
    chunks: ScanChunkTables;
    scratch: { chunkH: DevicePtr; chunkDeltaSum: DevicePtr };
    h0: SeqStates | null;
    hOut: SeqStates;
    y: MatView;
    nSeq: number;
    dInner: number;
    dState: number;
    staged?: boolean;
    carry?: ScanCarry;
  },
): void {
  const { inputs: s, chunks } = a;
  const { state: statePass, output: outputPass } = scanPassKernels(!!a.staged);
  // passes 1 and 3: a block per (chunk, SCAN_THREADS channels); pass 2: a thread per (sequence, channel, state)
  const perChunk: LaunchShape = { grid: [chunks.count, Math.ceil(a.dInner / SCAN_THREADS)], block: [SCAN_THREADS] };
  k.launch(
    statePass,
    perChunk,
    [
      ...mat(s.x),
      ...mat(s.delta),
      ptr(a.dtBias),
      ...mat(s.b),
      ptr(s.aLog2),
      ptr(chunks.chunkStart),
      ptr(chunks.chunkLen),
      ptr(a.scratch.chunkH),
      ptr(a.scratch.chunkDeltaSum),
      i32(a.dInner),
    ],
    statePass,
  );
  const segmented = (a.carry ?? DEFAULT_SCAN_CARRY) === 'segmented';
  const perSeq = a.dInner * a.dState;
  k.launch(
    segmented ? 'scan_carry_segmented' : 'scan_carry',
    segmented
      ? { grid: [Math.ceil(perSeq / CARRY_LANES), a.nSeq], block: [CARRY_LANES * CARRY_SEGMENTS] }
      : threadPerElement(a.nSeq * perSeq),
    [
      ptr(chunks.seqFirstChunk),
      ptr(a.scratch.chunkH),
      ptr(a.scratch.chunkDeltaSum),
      ptr(s.aLog2),
      ...states(a.h0),
      ...states(a.hOut),
      i32(a.nSeq),
      i32(a.dInner),
    ],
    'scan_carry',
  );
  k.launch(
    outputPass,
    perChunk,
    [
      ...mat(s.x),
      ...mat(s.delta),
      ...mat(s.z),
      ...mat(s.b),
      ...mat(s.c),
      ptr(s.aLog2),
      ptr(s.dSkip),
      ptr(chunks.chunkStart),
      ptr(chunks.chunkLen),
      ptr(a.scratch.chunkH),
      ...mat(a.y),
      i32(a.dInner),
    ],
    outputPass,
  );
}

/**
 * The one-pass selective scan (scan-fused.cu): `inputs.delta` is dt_proj's raw output (softplus(dt + dtBias) is
 * formed in the kernel's loads); rowIdx (nullable) maps each output row to its input row (DeciMamba's kept rows),
 * seqStart is in the output layout. twoWarps: scan_fused_t2 (two warps a channel, twice the parallelism).
 */
export function fusedScan(
  k: KernelSet,
  a: {
    inputs: ScanInputs;
    dtBias: DevicePtr;
    seqStart: DevicePtr;
    rowIdx: DevicePtr | null;
    h0: SeqStates | null;
    hOut: SeqStates;
    y: MatView;
    nSeq: number;
    dInner: number;
    twoWarps?: boolean;
  },
): void {
  const s = a.inputs;
  const [name, channels, warps] = a.twoWarps
    ? (['scan_fused_t2', FUSED_T2_CHANNELS, 2] as const)
    : (['scan_fused', FUSED_CHANNELS, 1] as const);
  k.launch(
    name,
    { grid: [a.nSeq, Math.ceil(a.dInner / channels)], block: [32 * warps * channels] },
    [
      ...mat(s.x),
      ...mat(s.delta),
      ptr(a.dtBias),
      ...mat(s.z),
      ...mat(s.b),
      ...mat(s.c),
      ptr(s.aLog2),
      ptr(s.dSkip),
      ptr(a.seqStart),
      ptr(a.rowIdx),
      ...states(a.h0),
      ...states(a.hOut),
      ...mat(a.y),
      i32(a.dInner),
    ],
    name,
  );
}

/**
 * scores[row] = ‖Δ_row‖₂ (f64) for the context rows of the sequences that decimate here. With `bias`, `delta` is
 * dt_proj's raw output and softplus(dt + bias) is formed on the fly (the fused scan path never writes Δ).
 */
export function deltaScores(
  k: KernelSet,
  a: {
    delta: MatView;
    bias?: DevicePtr | null;
    tables: RowTables;
    contextLen: DevicePtr;
    scores: DevicePtr;
    rows: number;
    dInner: number;
  },
): void {
  k.launch(
    'delta_score',
    { grid: [Math.ceil(a.rows / 8)], block: [256] },
    [
      ...mat(a.delta),
      ptr(a.bias ?? null),
      ptr(a.tables.rowSeq),
      ptr(a.tables.seqStart),
      ptr(a.contextLen),
      ptr(a.scores),
      i32(a.rows),
      i32(a.dInner),
    ],
    'delta_score',
  );
}

/** srcRow for the next group: the top-K context rows (ties to the earlier one) in order, then the protected tail. */
export function selectKept(
  k: KernelSet,
  a: {
    scores: DevicePtr;
    seqStart: DevicePtr;
    contextLen: DevicePtr;
    keep: DevicePtr;
    newStart: DevicePtr;
    srcRow: DevicePtr;
    status: DevicePtr;
    nSeq: number;
  },
): void {
  k.launch(
    'decimate_select',
    { grid: [a.nSeq], block: [SELECT_THREADS] },
    [ptr(a.scores), ptr(a.seqStart), ptr(a.contextLen), ptr(a.keep), ptr(a.newStart), ptr(a.srcRow), ptr(a.status)],
    'decimate_select',
  );
}

/**
 * dst[j, 0:width] = src[srcRow[j], 0:width] for elements of `elementBytes`; 32-bit words when the byte offsets and
 * sizes allow, else 16-bit (bf16 B/C after an odd dt_rank).
 */
export function gatherRows(
  k: KernelSet,
  a: { src: MatView; dst: MatView; width: number; elementBytes: 2 | 4; srcRow: DevicePtr; nRows: number },
  label = 'gather',
): void {
  if (a.nRows === 0) return;
  const bytes = (n: number) => n * a.elementBytes;
  const words32 = [bytes(a.src.ld), bytes(a.dst.ld), bytes(a.width), a.src.ptr, a.dst.ptr].every((v) => v % 4 === 0);
  const unit = words32 ? 4 : 2;
  const inUnits = (n: number) => bytes(n) / unit;
  k.launch(
    words32 ? 'gather_rows_u32' : 'gather_rows_u16',
    { grid: [a.nRows], block: [rowThreads(inUnits(a.width))] },
    [
      ptr(a.src.ptr),
      i64(inUnits(a.src.ld)),
      ptr(a.dst.ptr),
      i64(inUnits(a.dst.ld)),
      i32(inUnits(a.width)),
      ptr(a.srcRow),
      i32(a.nRows),
    ],
    label,
  );
}
