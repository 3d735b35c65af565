// Typed launchers for the kernels, named after the reference's ops (mamba/reference/ops.ts) so the device forward
// reads like the reference one; the scan and decimation launchers live in ops-scan.ts. Pointers are device
// addresses; strides and widths are in elements unless a name says otherwise. "act" buffers hold f32 or bf16 depending on the kernel build.
import type { DevicePtr } from './bindings/driver.ts';
import { ComputeType, type GemmType } from './bindings/cublas.ts';
import type { CudaDevice, KernelSet } from './device.ts';
import { CONV_ROWS, SSM_STEP_DBL_MAX, SSM_STEP_SEQS, SSM_STEP_THREADS } from './kernels/manifest.ts';
import {
  f32,
  i32,
  i64,
  type L2Range,
  l2Prefetch,
  mat,
  ptr,
  rowThreads,
  type SeqStates,
  states,
  strideBlocks,
  threadPerElement,
} from './ops-args.ts';

/** A row-major matrix view: base pointer and row stride (elements). */
export interface MatView {
  ptr: DevicePtr;
  ld: number;
}

/** The first block's input: the residual stream starts from the embedding rows table[ids[row]]. */
export interface EmbedRows {
  ids: DevicePtr;
  table: DevicePtr;
}

/** residual = hidden (+ residual); normed = RMSNorm(residual)·w */
export function addRmsNorm(
  k: KernelSet,
  a: {
    /** null: the residual already holds the previous block's output (out_proj added into it). */
    hidden: DevicePtr | null;
    residual: DevicePtr;
    normed: DevicePtr;
    weight: DevicePtr;
    rows: number;
    dim: number;
    eps: number;
    /** The first block: the residual stream starts from the embedding rows table[ids[row]] (hidden is not read). */
    embed: EmbedRows | null;
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
      ptr(a.embed?.ids ?? null),
      ptr(a.embed?.table ?? null),
    ],
    'add_rmsnorm',
  );
}

/** out[j] = RMSNorm_f(hidden[rowIdx[j]] + residual[rowIdx[j]]) */
export function finalNorm(
  k: KernelSet,
  a: {
    /** null: the residual already holds the last block's output. */
    hidden: DevicePtr | null;
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
    /** y = x·Wᵀ + beta·y (default 0). */
    beta?: number;
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
      beta: a.beta,
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
    init: SeqStates | null;
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
      ...states(a.init),
      ptr(a.out),
      i32(a.rows),
      i32(a.dInner),
    ],
    'conv1d_silu',
  );
}

/** Each sequence's last d_conv pre-conv inputs → state[s] ([dInner, dConv]) at out.ptr + s·out.seqStride. */
export function convStateCapture(
  k: KernelSet,
  a: {
    x: MatView;
    seqStart: DevicePtr;
    init: SeqStates | null;
    out: SeqStates;
    nSeq: number;
    dInner: number;
  },
): void {
  k.launch(
    'conv_state_capture',
    threadPerElement(a.nSeq * a.dInner),
    [...mat(a.x), ptr(a.seqStart), ...states(a.init), ...states(a.out), i32(a.nSeq), i32(a.dInner)],
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

export function logSoftmax(k: KernelSet, logits: DevicePtr, rows: number, vocab: number): void {
  k.launch('log_softmax_rows', { grid: [rows], block: [256] }, [ptr(logits), i32(rows), i32(vocab)], 'log_softmax');
}

export function argmax(k: KernelSet, logits: DevicePtr, rows: number, vocab: number, out: DevicePtr): void {
  k.launch('argmax_rows', { grid: [rows], block: [1024] }, [ptr(logits), i32(rows), i32(vocab), ptr(out)], 'argmax');
}

/**
 * A decode step's conv: conv state ← shift left, append x (xz's x rows); out = SiLU(conv). As a programmatic
 * dependent it reads its state and weights before in_proj's output.
 */
export function convStep(
  k: KernelSet,
  a: {
    x: MatView;
    state: SeqStates;
    weight: DevicePtr;
    bias: DevicePtr | null;
    out: DevicePtr;
    batch: number;
    dInner: number;
    programmatic?: boolean;
    /** What later launches will read, asked into L2 now (the scan's states). */
    prefetch?: L2Range | null;
  },
): void {
  k.launch(
    'conv_step',
    { ...threadPerElement(a.batch * a.dInner), programmatic: a.programmatic },
    [
      ...mat(a.x),
      ...states(a.state),
      ptr(a.weight),
      ptr(a.bias),
      ptr(a.out),
      i32(a.batch),
      i32(a.dInner),
      ...l2Prefetch(a.prefetch ?? null),
    ],
    'conv_step',
  );
}

/** Lanes of ssm_step_dt that share one (sequence, channel): step.cu's ssm_step_lanes. */
export function ssmStepLanes(dState: number): number {
  for (let lanes = 8; lanes > 1; lanes >>= 1) if (dState % (4 * lanes) === 0) return lanes;
  return 1;
}

/** Sequences a thread of ssm_step_dt steps: 1, 2 (ssm_step_dt_s2) or SSM_STEP_SEQS (ssm_step_dt_s4). */
export type SsmStepSeqs = 1 | 2 | typeof SSM_STEP_SEQS;

/**
 * The decode session's default: four sequences a thread where one a thread would be more than 64K (sequence,
 * channel) pairs (2,048 blocks, about two waves on an H100). v12 on the H100: 1.4b b64 17,942 against 16,139 tok/s,
 * b16 6,390 against 6,261; 130m b64 a draw (80.6K against 80.1K); below that one a thread wins (130m b16 26.0K
 * against 24.0K, 1.4b b8 3,444 against 3,326).
 */
export function ssmStepSeqsByDefault(batch: number, dInner: number): SsmStepSeqs {
  return batch * dInner >= 65536 ? SSM_STEP_SEQS : 1;
}

/**
 * Δ = softplus(dt_proj(x_dbl's dt) + bias), then the one-step scan: h ← exp(Δ·A) ⊙ h + Δ·B·x, y = (C·h + D·x) ⊙
 * SiLU(z), states in place. x_dbl is x_proj's output [batch, dtRank + 2·dState] act; dt_proj's weight transposed.
 * `seqs` sequences a thread (step.cu: 4 share dt_proj's weights and A, and issue their state loads together).
 */
export function ssmStepDt(
  k: KernelSet,
  a: {
    x: DevicePtr;
    xDbl: MatView;
    z: MatView;
    dtProjT: DevicePtr;
    dtBias: DevicePtr;
    aLog2: DevicePtr;
    dSkip: DevicePtr;
    state: SeqStates;
    y: DevicePtr;
    batch: number;
    dInner: number;
    dState: number;
    dtRank: number;
    seqs?: SsmStepSeqs;
    programmatic?: boolean;
    /** What later launches will read, asked into L2 now (the next layer's weights). */
    prefetch?: L2Range | null;
  },
): void {
  if (a.dtRank + 2 * a.dState > SSM_STEP_DBL_MAX)
    throw new RangeError(`ssm_step_dt takes dtRank + 2·dState ≤ ${SSM_STEP_DBL_MAX}, got ${a.dtRank + 2 * a.dState}`);
  const seqs = a.seqs ?? 1;
  const channels = SSM_STEP_THREADS / ssmStepLanes(a.dState);
  const name = seqs === 1 ? 'ssm_step_dt' : seqs === 2 ? 'ssm_step_dt_s2' : 'ssm_step_dt_s4';
  k.launch(
    name,
    {
      grid: [Math.ceil(a.dInner / channels), Math.ceil(a.batch / seqs)],
      block: [SSM_STEP_THREADS],
      programmatic: a.programmatic,
    },
    [
      ptr(a.x),
      ...mat(a.xDbl),
      ...mat(a.z),
      ptr(a.dtProjT),
      ptr(a.dtBias),
      ptr(a.aLog2),
      ptr(a.dSkip),
      ...states(a.state),
      ptr(a.y),
      i32(a.batch),
      i32(a.dInner),
      i32(a.dtRank),
      ...l2Prefetch(a.prefetch ?? null),
    ],
    name,
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
