// Launchers of a decode step's fused kernels (kernels/step-fused.cu): four launches a layer for small batches, five
// for larger ones, instead of eight. mixer.ts chooses them for a 'step' layer when the session asks (decode.ts).
import type { DevicePtr } from './bindings/driver.ts';
import type { KernelSet } from './device.ts';
import {
  STEP_DBL_MAX,
  STEP_DT_BATCH,
  STEP_DT_THREADS,
  STEP_GEMV_BATCH,
  STEP_GEMV_ROWS,
  STEP_GEMV_THREADS,
  STEP_SLICE,
  STEP_SLICE_BATCH,
  STEP_SMEM_FLOATS,
} from './kernels/manifest.ts';
import { f32, i32, i64, mat, ptr, type SeqStates, states } from './ops-args.ts';
import type { MatView } from './ops.ts';

/** Whether the fused step kernels take this model and batch (the rest of the step runs as before either way). */
export function fusedStepFits(shape: { dtRank: number; dState: number }): boolean {
  return shape.dtRank + 2 * shape.dState <= STEP_DBL_MAX;
}

/** Whether in_proj and out_proj run as the step's own GEMVs (small batches) rather than cuBLAS. */
export function stepGemvFits(batch: number, shape: { dModel: number; dInner: number }): boolean {
  const { dModel, dInner } = shape;
  const kFits = (k: number) => k % 2 === 0 && k <= STEP_SMEM_FLOATS;
  return batch <= STEP_GEMV_BATCH && kFits(dModel) && kFits(dInner);
}

/** Channel slices of step_conv_x_proj: the partial sums' first dimension. */
export function stepSlices(dInner: number): number {
  return Math.ceil(dInner / STEP_SLICE);
}

const gemvGrid = (n: number) => ({
  grid: [Math.ceil(n / ((STEP_GEMV_THREADS / 32) * STEP_GEMV_ROWS))] as [number],
  block: [STEP_GEMV_THREADS] as [number],
});

/** residualOut = hidden (+ residualIn); xz = in_proj(RMSNorm(residualOut)·norm) (+ bias). */
export function stepNormInProj(
  k: KernelSet,
  a: {
    hidden: DevicePtr;
    residualIn: DevicePtr;
    residualOut: DevicePtr;
    first: boolean;
    norm: DevicePtr;
    eps: number;
    weight: DevicePtr;
    bias: DevicePtr | null;
    xz: DevicePtr;
    batch: number;
    dModel: number;
    n: number;
  },
): void {
  k.launch(
    'step_norm_in_proj',
    gemvGrid(a.n),
    [
      ptr(a.hidden),
      ptr(a.residualIn),
      ptr(a.residualOut),
      i32(a.first ? 1 : 0),
      ptr(a.norm),
      f32(a.eps),
      ptr(a.weight),
      ptr(a.bias),
      ptr(a.xz),
      i32(a.batch),
      i32(a.dModel),
      i32(a.n),
    ],
    'step_norm_in_proj',
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
  },
): void {
  k.launch(
    'step_out_proj',
    gemvGrid(a.n),
    [ptr(a.y), ptr(a.weight), ptr(a.bias), ptr(a.out), i32(a.batch), i32(a.dInner), i32(a.n)],
    'step_out_proj',
  );
}

/** conv_step + SiLU → x; x_proj's partial sums per channel slice → partial [slices, batch, dbl] f32. */
export function stepConvXProj(
  k: KernelSet,
  a: {
    xz: MatView;
    state: SeqStates;
    convWeight: DevicePtr;
    convBias: DevicePtr | null;
    x: DevicePtr;
    xProj: DevicePtr;
    partial: DevicePtr;
    batch: number;
    dInner: number;
    dbl: number;
  },
): void {
  k.launch(
    'step_conv_x_proj',
    { grid: [stepSlices(a.dInner), Math.ceil(a.batch / STEP_SLICE_BATCH)], block: [256] },
    [
      ...mat(a.xz),
      ...states(a.state),
      ptr(a.convWeight),
      ptr(a.convBias),
      ptr(a.x),
      ptr(a.xProj),
      ptr(a.partial),
      i32(a.batch),
      i32(a.dInner),
      i32(a.dbl),
    ],
    'step_conv_x_proj',
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
    dtRank: number;
  },
): void {
  k.launch(
    'step_dt_ssm',
    { grid: [Math.ceil(a.dInner / STEP_DT_THREADS), Math.ceil(a.batch / STEP_DT_BATCH)], block: [STEP_DT_THREADS] },
    [
      ptr(a.partial),
      i32(stepSlices(a.dInner)),
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
