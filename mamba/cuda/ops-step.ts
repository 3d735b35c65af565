// Launchers of a decode step's fused kernels (kernels/step-fused.cu): three launches a layer instead of eight, for up
// to STEP_GEMV_BATCH sequences, optionally as programmatic dependents (each may start before the previous ends).
// mixer.ts runs them for a 'step' layer when the session asks (decode.ts).
import type { DeviceInfo, DevicePtr, KernelArg } from './bindings/driver.ts';
import type { DeviceLayer } from './device-weights.ts';
import type { KernelSet } from './device.ts';
import {
  GEMM_PARTS,
  GEMM_SEQS,
  GEMM_STEPS,
  HEAD_ROWS,
  MMA_K_PARTS,
  MMA_K_STEPS,
  STEP_DBL_MAX,
  STEP_GEMV_BATCH,
  STEP_GEMV_THREADS,
  STEP_IN_ROWS,
  STEP_OUT_ROWS,
  STEP_SMEM_BYTES,
} from './kernels/manifest.ts';
import { f32, i32, type L2Range, l2Prefetch, mat, ptr, type SeqStates, states } from './ops-args.ts';
import { type EmbedRows, type MatView, ssmStepLanes } from './ops.ts';

const WARPS = STEP_GEMV_THREADS / 32;

/**
 * Whether the fused step takes this model and batch: at most 8 sequences, rows of 16 bytes (8 elements) for its
 * vector loads, one staged input row in shared memory, and x_proj's columns one a thread.
 */
export function fusedStepFits(
  batch: number,
  shape: { dModel: number; dInner: number; dtRank: number; dState: number },
): boolean {
  const { dModel, dInner, dtRank, dState } = shape;
  const kFits = (k: number) => k % 8 === 0 && 4 * k <= STEP_SMEM_BYTES;
  return batch <= STEP_GEMV_BATCH && kFits(dModel) && kFits(dInner) && dtRank + 2 * dState <= STEP_DBL_MAX;
}

export const FUSED_STEP_DEFAULT = { maxBatch: 2, maxDInner: 1536 } as const;

/**
 * Whether a decode session takes the fused step unless asked otherwise: where the device check measured it faster
 * than the six unfused launches on the H100 (mamba/cuda/README.md), 130m (d_inner 1536) up to batch 2 (v11, graphs:
 * b1 2,424 against 1,821 tok/s, b2 4,232 against 3,636; from b4 the six launches win, 7,178 against 6,650). At 1.4b
 * (d_inner 4096) the fused step was slower at every batch (v11: b1 302 against 458, b8 1,411 against 3,499):
 * step_dt_ssm adds up x_proj's partial sums, one per 32 channels, which takes longer than the launches it saves.
 * Shapes between the two are unmeasured and run the unfused launches.
 */
export function fusedStepByDefault(batch: number, shape: Parameters<typeof fusedStepFits>[1]): boolean {
  return (
    batch <= FUSED_STEP_DEFAULT.maxBatch && shape.dInner <= FUSED_STEP_DEFAULT.maxDInner && fusedStepFits(batch, shape)
  );
}

/** Blocks of step_in_proj_conv that hold x's channels: the partial sums' first dimension. */
export function stepXBlocks(dInner: number): number {
  return Math.ceil(dInner / (STEP_IN_ROWS * WARPS));
}

/** What step_in_proj_conv and step_in_proj_conv_mma take after their input, in their parameters' order. */
interface InProjConv {
  weight: DevicePtr;
  bias: DevicePtr | null;
  xz: DevicePtr;
  state: SeqStates;
  convWeight: DevicePtr;
  convBias: DevicePtr | null;
  x: DevicePtr;
  xProj: DevicePtr;
  /** x_proj's partial sums; null (the mma step's 'gemm' form only): none, the x_proj GEMM reads x. */
  partial: DevicePtr | null;
  batch: number;
  dModel: number;
  dInner: number;
  dbl: number;
  programmatic: boolean;
  /** What later launches will read, asked into L2 while the blocks wait on the previous launch (the next layer's weights). */
  prefetch?: L2Range | null;
}
const inProjConvArgs = (a: InProjConv, more: KernelArg[] = []) => [
  ptr(a.weight),
  ptr(a.bias),
  ptr(a.xz),
  ...states(a.state),
  ptr(a.convWeight),
  ptr(a.convBias),
  ptr(a.x),
  ptr(a.xProj),
  ptr(a.partial),
  i32(a.batch),
  i32(a.dModel),
  i32(a.dInner),
  i32(a.dbl),
  ...more,
  ...l2Prefetch(a.prefetch ?? null),
];

/**
 * residualOut = hidden (+ residualIn); xz = in_proj(RMSNorm(residualOut)·norm) (+ bias); on x's rows conv_step +
 * SiLU → x and x_proj's partial sums per block of channels → partial [xBlocks, batch, dbl] f32.
 */
export function stepInProjConv(
  k: KernelSet,
  a: InProjConv & {
    hidden: DevicePtr;
    residualIn: DevicePtr;
    residualOut: DevicePtr;
    /** The first layer: the residual stream starts from the embedding rows table[ids[b]] (hidden is not read). */
    embed: EmbedRows | null;
    norm: DevicePtr;
    eps: number;
    partial: DevicePtr;
  },
): void {
  k.launch(
    'step_in_proj_conv',
    {
      grid: [Math.ceil((2 * a.dInner) / (STEP_IN_ROWS * WARPS))],
      block: [STEP_GEMV_THREADS],
      programmatic: a.programmatic,
    },
    [
      ptr(a.hidden),
      ptr(a.residualIn),
      ptr(a.residualOut),
      ptr(a.embed?.ids ?? null),
      ptr(a.embed?.table ?? null),
      ptr(a.norm),
      f32(a.eps),
      ...inProjConvArgs(a),
    ],
    'step_in_proj_conv',
  );
}

/**
 * Whether the mma step's in_proj (kernels/step-mma.cu) takes this model: bf16 activations (its tensor-core tiles read
 * bf16), d_model a multiple of 64 (four k parts of 16-wide steps) and at most 1024 (its weights sit in registers),
 * d_inner a multiple of its 32-row blocks (step_in_proj_conv's, whose partial sums step_dt_ssm adds), x_proj's columns
 * one a thread. Any batch: it stages 16 sequences at a time.
 */
export function mmaStepFits(
  shape: { dModel: number; dInner: number; dtRank: number; dState: number },
  actBf16: boolean,
): boolean {
  const { dModel, dInner, dtRank, dState } = shape;
  const kStep = 16 * MMA_K_PARTS;
  return (
    actBf16 &&
    dModel % kStep === 0 &&
    dModel <= kStep * MMA_K_STEPS &&
    dInner % (STEP_IN_ROWS * WARPS) === 0 &&
    dtRank + 2 * dState <= STEP_DBL_MAX
  );
}

export const MMA_STEP_DEFAULT = { minBatch: FUSED_STEP_DEFAULT.maxBatch + 1, maxBatch: 16, maxDInner: 1536 } as const;

/**
 * The mma step a decode session takes unless asked otherwise: 'partials' where the device check measured it faster
 * than the fused step and the six launches on the H100 (v20: 130m b8 16,336 against 14,235 tok/s, b16 30,740 against
 * 27,459; a draw at b2 and b32; b64 67.9K against 84.0K, where its one block per 32 rows walks four tiles of 16
 * sequences in turn); else false. Other shapes are unmeasured.
 */
export function mmaStepByDefault(
  batch: number,
  shape: Parameters<typeof mmaStepFits>[0],
  actBf16: boolean,
): 'partials' | false {
  const { minBatch, maxBatch, maxDInner } = MMA_STEP_DEFAULT;
  const inRange = batch >= minBatch && batch <= maxBatch && shape.dInner <= maxDInner;
  return inRange && mmaStepFits(shape, actBf16) ? 'partials' : false;
}

/**
 * The mma step's first launch: xz = in_proj(normed) (+ bias) on the tensor cores; on x's rows conv_step + SiLU → x and,
 * where `partial` is set, x_proj's partial sums [xBlocks, batch, dbl] f32, as stepInProjConv's (step_dt_ssm adds them up).
 * A block takes `seqSpan` sequences (the grid's second dimension spreads the batch).
 */
export function stepInProjConvMma(k: KernelSet, a: InProjConv & { normed: DevicePtr; seqSpan: number }): void {
  const spans = Math.ceil(a.batch / a.seqSpan);
  k.launch(
    'step_in_proj_conv_mma',
    { grid: [2 * stepXBlocks(a.dInner), spans], block: [STEP_GEMV_THREADS], programmatic: a.programmatic },
    [ptr(a.normed), ...inProjConvArgs(a, [i32(a.seqSpan)])],
    'step_in_proj_conv_mma',
  );
}

/** Whether step_gemm_mma (kernels/step-gemm.cu) takes a GEMM over k: bf16 builds, k a multiple of 8 parts of 16, at most 1536. */
export function stepGemmFits(k: number, actBf16: boolean): boolean {
  return actBf16 && k % (16 * GEMM_PARTS) === 0 && k <= 16 * GEMM_PARTS * GEMM_STEPS;
}

/**
 * out[b, o] = Σ_i w[o, i]·in[b, i] (+ bias) on the tensor cores for a decode step's x_proj (act out) and out_proj
 * (f32 out), as a programmatic dependent where `programmatic`: a block's weights are loaded before it waits.
 */
export function stepGemmMma(
  k: KernelSet,
  a: {
    input: DevicePtr;
    weight: DevicePtr;
    bias: DevicePtr | null;
    out: DevicePtr;
    outF32: boolean;
    batch: number;
    k: number;
    n: number;
    programmatic: boolean;
    label: string;
  },
): void {
  k.launch(
    'step_gemm_mma',
    {
      grid: [Math.ceil(a.n / 16), Math.ceil(a.batch / GEMM_SEQS)],
      block: [STEP_GEMV_THREADS],
      programmatic: a.programmatic,
    },
    [ptr(a.input), ptr(a.weight), ptr(a.bias), ptr(a.out), i32(a.outF32 ? 1 : 0), i32(a.batch), i32(a.k), i32(a.n)],
    a.label,
  );
}

/** x_dbl = Σ partial; Δ = softplus(dt_proj(dt) + bias); the ssm_step update → y. */
export function stepDtSsm(
  k: KernelSet,
  a: {
    partial: DevicePtr;
    x: DevicePtr;
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
    programmatic: boolean;
  },
): void {
  const channels = STEP_GEMV_THREADS / ssmStepLanes(a.dState);
  k.launch(
    'step_dt_ssm',
    {
      grid: [Math.ceil(a.dInner / channels), a.batch],
      block: [STEP_GEMV_THREADS],
      programmatic: a.programmatic,
    },
    [
      ptr(a.partial),
      i32(stepXBlocks(a.dInner)),
      ptr(a.x),
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
    ],
    'step_dt_ssm',
  );
}

/** out = y · wᵀ (+ bias), f32. */
export function stepOutProj(
  k: KernelSet,
  a: {
    y: DevicePtr;
    weight: DevicePtr;
    bias: DevicePtr | null;
    out: DevicePtr;
    batch: number;
    dInner: number;
    n: number;
    programmatic: boolean;
  },
): void {
  k.launch(
    'step_out_proj',
    { grid: [Math.ceil(a.n / (STEP_OUT_ROWS * WARPS))], block: [STEP_GEMV_THREADS], programmatic: a.programmatic },
    [ptr(a.y), ptr(a.weight), ptr(a.bias), ptr(a.out), i32(a.batch), i32(a.dInner), i32(a.n)],
    'step_out_proj',
  );
}

/** Whether head_greedy takes this batch: at most 8 sequences, all of them staged at once as act_t (k % 8 == 0). */
export function greedyHeadFits(batch: number, dModel: number, actBytes: number): boolean {
  return batch <= STEP_GEMV_BATCH && dModel % 8 === 0 && batch * dModel * actBytes <= STEP_SMEM_BYTES;
}

/** head_greedy's blocks: one per SM (226 registers a thread leave room for one), at most one per row block. */
export function headGreedyBlocks(vocab: number, multiprocessors: number): number {
  return Math.min(Math.ceil(vocab / (HEAD_ROWS * WARPS)), multiprocessors);
}

/**
 * Greedy decoding's head in one launch: out = nextIds = argmax over the vocabulary of lm_head(RMSNorm_f(hidden +
 * residual)), the logits never written. `partial` holds 2·blocks·batch f32 and `arrival` one u32 that must be 0 before
 * the first launch (each launch leaves it 0).
 */
export function headGreedy(
  k: KernelSet,
  a: {
    hidden: DevicePtr;
    residual: DevicePtr;
    norm: DevicePtr;
    eps: number;
    weight: DevicePtr;
    partial: DevicePtr;
    arrival: DevicePtr;
    out: DevicePtr;
    nextIds: DevicePtr;
    batch: number;
    dModel: number;
    vocab: number;
    blocks: number;
    programmatic: boolean;
  },
): void {
  k.launch(
    'head_greedy',
    { grid: [a.blocks], block: [STEP_GEMV_THREADS], programmatic: a.programmatic },
    [
      ptr(a.hidden),
      ptr(a.residual),
      ptr(a.norm),
      f32(a.eps),
      ptr(a.weight),
      ptr(a.partial),
      ptr(a.arrival),
      ptr(a.out),
      ptr(a.nextIds),
      i32(a.batch),
      i32(a.dModel),
      i32(a.vocab),
    ],
    'head_greedy',
  );
}

/** Pointers a layer has in step_layers' table (kernels/step-layers.cu StepLayer, in this order; null → 0). */
const STEP_LAYER_FIELDS = [
  'norm',
  'inProj',
  'inProjBias',
  'convWeight',
  'convBias',
  'xProj',
  'dtProjT',
  'dtProjBias',
  'aLog2',
  'd',
  'outProj',
  'outProjBias',
] as const satisfies readonly (keyof DeviceLayer)[];
/** A layer's entry: the pointers, then its span's address and size (StepLayer.span, spanBytes). */
export const STEP_LAYER_BYTES = 8 * (STEP_LAYER_FIELDS.length + 2);

/** step_layers' table of every layer's weights, as the bytes to upload (u64 device addresses, then the span). */
export function stepLayerTable(layers: DeviceLayer[]): BigUint64Array {
  return BigUint64Array.from(
    layers.flatMap((l) => [
      ...STEP_LAYER_FIELDS.map((f) => BigInt(l[f] ?? 0)),
      BigInt(l.span.ptr),
      BigInt(l.span.bytes),
    ]),
  );
}

/**
 * step_layers' grid: one block for each row block of its larger GEMV stage (in_proj or out_proj; the scan stage's
 * items loop over them), fewer than one a multiprocessor per the occupancy; one block where the device offers no
 * cooperative launch (the CPU emulator), which then runs every stage's work in turn. 0 where the stages would need
 * every multiprocessor: an H100 run at 132 blocks (one for each of batch 8's 192 scan items, capped) never finished,
 * not understood yet, so such shapes take the fused step's launches instead.
 */
export function stepLayersBlocks(k: KernelSet, info: DeviceInfo, shape: { dModel: number; dInner: number }): number {
  if (!info.cooperativeLaunch) return 1;
  const work = Math.max(
    Math.ceil((2 * shape.dInner) / (STEP_IN_ROWS * WARPS)),
    Math.ceil(shape.dModel / (STEP_OUT_ROWS * WARPS)),
  );
  const resident = k.blocksPerMultiprocessor('step_layers', STEP_GEMV_THREADS) * info.multiprocessors;
  return work < resident ? work : 0;
}

/**
 * A whole decode step's layers in one launch (kernels/step-layers.cu): per layer the fused step's three stages with a
 * grid barrier between them. The residual stream ends in residual[nLayer % 2] and the last out_proj in `hidden`.
 * `barrier` is one u32, 0 before the first launch (each launch leaves it as a multiple of 2³¹).
 */
export function stepLayers(
  k: KernelSet,
  a: {
    table: DevicePtr;
    nLayer: number;
    ids: DevicePtr;
    embedding: DevicePtr;
    eps: number;
    hidden: DevicePtr;
    residual: [DevicePtr, DevicePtr];
    xz: DevicePtr;
    x: DevicePtr;
    partial: DevicePtr;
    y: DevicePtr;
    conv: SeqStates;
    ssm: SeqStates;
    barrier: DevicePtr;
    batch: number;
    dModel: number;
    dInner: number;
    dtRank: number;
    blocks: number;
    /** Each layer first asks L2 for the next layer's weights (DecodeSession.l2Prefetch). */
    l2Prefetch: boolean;
  },
): void {
  k.launch(
    'step_layers',
    { grid: [a.blocks], block: [STEP_GEMV_THREADS], cooperative: a.blocks > 1 },
    [
      ptr(a.table),
      i32(a.nLayer),
      ptr(a.ids),
      ptr(a.embedding),
      f32(a.eps),
      ptr(a.hidden),
      ptr(a.residual[0]),
      ptr(a.residual[1]),
      ptr(a.xz),
      ptr(a.x),
      ptr(a.partial),
      ptr(a.y),
      ...states(a.conv),
      ...states(a.ssm),
      ptr(a.barrier),
      i32(a.batch),
      i32(a.dModel),
      i32(a.dInner),
      i32(a.dtRank),
      i32(a.l2Prefetch ? 1 : 0),
    ],
    'step_layers',
  );
}
