// Typed launchers for the kernels, named after the reference's ops (mamba/reference/ops.ts) so the device forward
// reads like the reference one. Pointers are device addresses; strides and widths are in elements unless a name
// says otherwise. "act" buffers hold f32 or bf16 depending on the kernel build.
import type { DevicePtr, KernelArg } from './bindings/driver.ts';
import { ComputeType, type GemmType } from './bindings/cublas.ts';
import type { CudaDevice, KernelSet } from './device.ts';
import { CONV_ROWS, FUSED_CHANNELS, FUSED_T2_CHANNELS, SCAN_THREADS, SELECT_THREADS } from './kernels/manifest.ts';

const ptr = (p: DevicePtr | null): KernelArg => ({ ptr: p });
const i32 = (v: number): KernelArg => ({ i32: v });
const i64 = (v: number): KernelArg => ({ i64: v });
const f32 = (v: number): KernelArg => ({ f32: v });
/** A matrix argument as the kernels take it: base pointer, then row stride. */
const mat = (m: MatView): KernelArg[] => [ptr(m.ptr), i64(m.ld)];

/** Threads for a row-wise kernel over `width` elements: a multiple of 32, at most 256. */
function rowThreads(width: number): number {
  return Math.min(256, Math.max(32, Math.ceil(width / 32) * 32));
}

/** Blocks for a grid-stride elementwise kernel. */
function strideBlocks(n: number, threads: number): number {
  return Math.max(1, Math.min(Math.ceil(n / threads), 65535));
}

/** A row-major matrix view: base pointer and row stride (elements). */
export interface MatView {
  ptr: DevicePtr;
  ld: number;
}

export function embed(
  k: KernelSet,
  ids: DevicePtr,
  table: DevicePtr,
  hidden: DevicePtr,
  rows: number,
  dModel: number,
): void {
  k.launch(
    'embed_rows',
    { grid: [rows], block: [rowThreads(dModel)] },
    [ptr(ids), ptr(table), ptr(hidden), i32(rows), i32(dModel)],
    'embedding',
  );
}

/** residual = hidden (+ residual); normed = RMSNorm(residual)·w */
export function addRmsNorm(
  k: KernelSet,
  a: {
    hidden: DevicePtr;
    residual: DevicePtr;
    normed: DevicePtr;
    weight: DevicePtr;
    rows: number;
    dim: number;
    eps: number;
    first: boolean;
  },
): void {
  k.launch(
    'add_rmsnorm',
    { grid: [a.rows], block: [rowThreads(a.dim)] },
    [
      ptr(a.hidden),
      ptr(a.residual),
      ptr(a.normed),
      ptr(a.weight),
      i32(a.rows),
      i32(a.dim),
      f32(a.eps),
      i32(a.first ? 1 : 0),
    ],
    'add_rmsnorm',
  );
}

/** out[j] = RMSNorm_f(hidden[rowIdx[j]] + residual[rowIdx[j]]) */
export function finalNorm(
  k: KernelSet,
  a: {
    hidden: DevicePtr;
    residual: DevicePtr;
    rowIdx: DevicePtr;
    out: DevicePtr;
    weight: DevicePtr;
    nOut: number;
    dim: number;
    eps: number;
  },
): void {
  k.launch(
    'final_rmsnorm_rows',
    { grid: [a.nOut], block: [rowThreads(a.dim)] },
    [ptr(a.hidden), ptr(a.residual), ptr(a.rowIdx), ptr(a.out), ptr(a.weight), i32(a.nOut), i32(a.dim), f32(a.eps)],
    'final_norm',
  );
}

/** y = x·Wᵀ through cuBLAS; f32 accumulation whatever the operand types. */
export function linear(
  device: CudaDevice,
  a: {
    x: MatView;
    w: MatView;
    y: MatView;
    rows: number;
    k: number;
    n: number;
    xType: GemmType;
    wType: GemmType;
    yType: GemmType;
  },
  label: string,
): void {
  device.cublas.linear(
    {
      rows: a.rows,
      k: a.k,
      n: a.n,
      x: { ...a.x, type: a.xType },
      w: { ...a.w, type: a.wType },
      y: { ...a.y, type: a.yType },
    },
    ComputeType.f32,
  );
  device.profiler?.mark(label);
}

export function addBias(
  k: KernelSet,
  out: MatView,
  bias: DevicePtr,
  rows: number,
  width: number,
  isAct: boolean,
): void {
  k.launch(
    isAct ? 'add_bias_act' : 'add_bias_f32',
    { grid: [rows], block: [rowThreads(width)] },
    [ptr(out.ptr), i64(out.ld), ptr(bias), i32(rows), i32(width)],
    'bias',
  );
}

export interface RowTables {
  rowSeq: DevicePtr;
  seqStart: DevicePtr;
}

/** Causal depthwise conv1d + SiLU over packed sequences; initState (nullable) continues carried conv states. */
export function causalConv1dSilu(
  k: KernelSet,
  a: {
    x: MatView;
    weight: DevicePtr;
    bias: DevicePtr | null;
    tables: RowTables;
    init: { ptr: DevicePtr; seqStride: number } | null;
    out: DevicePtr;
    rows: number;
    dInner: number;
  },
): void {
  k.launch(
    'conv1d_silu',
    { grid: [Math.ceil(a.rows / CONV_ROWS), Math.ceil(a.dInner / 128)], block: [128] },
    [
      ...mat(a.x),
      ptr(a.weight),
      ptr(a.bias),
      ptr(a.tables.rowSeq),
      ptr(a.tables.seqStart),
      ptr(a.init?.ptr ?? null),
      i64(a.init?.seqStride ?? 0),
      ptr(a.out),
      i32(a.rows),
      i32(a.dInner),
    ],
    'conv1d_silu',
  );
}

/** Each sequence's last d_conv pre-conv inputs → state[s] ([dInner, dConv]) at out + s·outSeqStride. */
export function convStateCapture(
  k: KernelSet,
  a: {
    x: MatView;
    seqStart: DevicePtr;
    init: { ptr: DevicePtr; seqStride: number } | null;
    out: DevicePtr;
    outSeqStride: number;
    nSeq: number;
    dInner: number;
  },
): void {
  const n = a.nSeq * a.dInner;
  k.launch(
    'conv_state_capture',
    { grid: [Math.ceil(n / 256)], block: [256] },
    [
      ...mat(a.x),
      ptr(a.seqStart),
      ptr(a.init?.ptr ?? null),
      i64(a.init?.seqStride ?? 0),
      ptr(a.out),
      i64(a.outSeqStride),
      i32(a.nSeq),
      i32(a.dInner),
    ],
    'conv_state',
  );
}

/** Δ = softplus(Δ + bias), in place on [rows, dInner]. */
export function timeStep(k: KernelSet, delta: DevicePtr, bias: DevicePtr, rows: number, dInner: number): void {
  k.launch(
    'dt_softplus',
    { grid: [Math.max(1, Math.min(rows, 65535))], block: [rowThreads(dInner)] },
    [ptr(delta), ptr(bias), i32(rows), i32(dInner)],
    'dt_softplus',
  );
}

export interface ScanChunkTables {
  chunkStart: DevicePtr;
  chunkLen: DevicePtr;
  seqFirstChunk: DevicePtr;
  count: number;
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

/** The two-pass chunked selective scan (scan.cu): y and each sequence's final state. */
export function selectiveScan(
  k: KernelSet,
  a: {
    inputs: ScanInputs;
    chunks: ScanChunkTables;
    scratch: { chunkH: DevicePtr; chunkDeltaSum: DevicePtr };
    h0: { ptr: DevicePtr; seqStride: number } | null;
    hOut: { ptr: DevicePtr; seqStride: number };
    y: MatView;
    nSeq: number;
    dInner: number;
    dState: number;
  },
): void {
  const { inputs: s, chunks } = a;
  const channelBlocks = Math.ceil(a.dInner / SCAN_THREADS);
  k.launch(
    'scan_chunk_state',
    { grid: [chunks.count, channelBlocks], block: [SCAN_THREADS] },
    [
      ...mat(s.x),
      ...mat(s.delta),
      ...mat(s.b),
      ptr(s.aLog2),
      ptr(chunks.chunkStart),
      ptr(chunks.chunkLen),
      ptr(a.scratch.chunkH),
      ptr(a.scratch.chunkDeltaSum),
      i32(a.dInner),
    ],
    'scan_chunk_state',
  );
  const n = a.nSeq * a.dInner * a.dState;
  k.launch(
    'scan_carry',
    { grid: [Math.ceil(n / 256)], block: [256] },
    [
      ptr(chunks.seqFirstChunk),
      ptr(a.scratch.chunkH),
      ptr(a.scratch.chunkDeltaSum),
      ptr(s.aLog2),
      ptr(a.h0?.ptr ?? null),
      i64(a.h0?.seqStride ?? 0),
      ptr(a.hOut.ptr),
      i64(a.hOut.seqStride),
      i32(a.nSeq),
      i32(a.dInner),
    ],
    'scan_carry',
  );
  k.launch(
    'scan_chunk_output',
    { grid: [chunks.count, channelBlocks], block: [SCAN_THREADS] },
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
    'scan_chunk_output',
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
    h0: { ptr: DevicePtr; seqStride: number } | null;
    hOut: { ptr: DevicePtr; seqStride: number };
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
      ptr(a.h0?.ptr ?? null),
      i64(a.h0?.seqStride ?? 0),
      ptr(a.hOut.ptr),
      i64(a.hOut.seqStride),
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

export function logSoftmax(k: KernelSet, logits: DevicePtr, rows: number, vocab: number): void {
  k.launch('log_softmax_rows', { grid: [rows], block: [256] }, [ptr(logits), i32(rows), i32(vocab)], 'log_softmax');
}

export function argmax(k: KernelSet, logits: DevicePtr, rows: number, vocab: number, out: DevicePtr): void {
  k.launch('argmax_rows', { grid: [rows], block: [256] }, [ptr(logits), i32(rows), i32(vocab), ptr(out)], 'argmax');
}

export function convStep(
  k: KernelSet,
  a: {
    x: MatView;
    state: { ptr: DevicePtr; seqStride: number };
    weight: DevicePtr;
    bias: DevicePtr | null;
    out: DevicePtr;
    batch: number;
    dInner: number;
  },
): void {
  const n = a.batch * a.dInner;
  k.launch(
    'conv_step',
    { grid: [Math.ceil(n / 256)], block: [256] },
    [
      ...mat(a.x),
      ptr(a.state.ptr),
      i64(a.state.seqStride),
      ptr(a.weight),
      ptr(a.bias),
      ptr(a.out),
      i32(a.batch),
      i32(a.dInner),
    ],
    'conv_step',
  );
}

export function ssmStep(
  k: KernelSet,
  a: {
    x: DevicePtr;
    delta: DevicePtr;
    z: MatView;
    b: DevicePtr;
    c: DevicePtr;
    bcStride: number;
    aLog2: DevicePtr;
    dSkip: DevicePtr;
    state: { ptr: DevicePtr; seqStride: number };
    y: DevicePtr;
    batch: number;
    dInner: number;
  },
): void {
  const n = a.batch * a.dInner;
  k.launch(
    'ssm_step',
    { grid: [Math.ceil(n / 256)], block: [256] },
    [
      ptr(a.x),
      ptr(a.delta),
      ...mat(a.z),
      ptr(a.b),
      ptr(a.c),
      i64(a.bcStride),
      ptr(a.aLog2),
      ptr(a.dSkip),
      ptr(a.state.ptr),
      i64(a.state.seqStride),
      ptr(a.y),
      i32(a.batch),
      i32(a.dInner),
    ],
    'ssm_step',
  );
}

export function convertToBf16(k: KernelSet, src: DevicePtr, dst: DevicePtr, n: number): void {
  k.launch(
    'convert_f32_to_bf16',
    { grid: [strideBlocks(n, 256)], block: [256] },
    [ptr(src), ptr(dst), i64(n)],
    'convert',
  );
}
