// The kernel sources and names, and how they are put together for NVRTC: one translation unit that #includes every
// .cu file, with every file handed to NVRTC as a header (NVRTC reads no files itself).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const KERNEL_HEADER = 'prelude.cuh';
export const KERNEL_FILES = [
  'norm.cu',
  'conv.cu',
  'timestep.cu',
  'scan.cu',
  'scan-staged.cu',
  'scan-fused.cu',
  'decimate.cu',
  'gather.cu',
  'head.cu',
  'step.cu',
  'step-fused.cu',
  'step-layers.cu',
  'step-mma.cu',
  'step-gemm.cu',
  'convert.cu',
] as const;

/**
 * The split path's launches (profiler labels) that a fused scan (scan-fused.cu) replaces; DeciMamba's scores and
 * selection stay. The gather_* labels are mixer.ts's launches of gather_rows_*.
 */
export const SPLIT_SCAN_LAUNCHES = [
  'dt_softplus',
  'scan_chunk_state',
  'scan_carry',
  'scan_carry_segmented',
  'scan_chunk_output',
  'scan_chunk_state_staged',
  'scan_chunk_output_staged',
  'gather_x',
  'gather_delta',
  'gather_z',
  'gather_bc',
] as const;

export const KERNEL_NAMES = [
  'add_rmsnorm',
  'final_rmsnorm_rows',
  'conv1d_silu',
  'conv_state_capture',
  'dt_softplus',
  'scan_chunk_state',
  'scan_carry',
  'scan_carry_segmented',
  'scan_chunk_output',
  'scan_chunk_state_staged',
  'scan_chunk_output_staged',
  'delta_score',
  'decimate_select',
  'gather_rows_u32',
  'gather_rows_u16',
  'log_softmax_rows',
  'argmax_rows',
  'conv_step',
  'ssm_step_dt',
  'ssm_step_dt_s2',
  'ssm_step_dt_s4',
  'convert_f32_to_bf16',
  'add_bias_act',
  'add_bias_f32',
  'scan_fused',
  'scan_fused_t2',
  'step_in_proj_conv',
  'step_dt_ssm',
  'step_out_proj',
  'head_greedy',
  'step_layers',
  'step_in_proj_conv_mma',
  'step_gemm_mma',
] as const;
export type KernelName = (typeof KERNEL_NAMES)[number];

/** Compile-time settings of one kernel build (prelude.cuh documents them). */
export interface KernelBuild {
  actBf16: boolean;
  dState: number;
  dConv: number;
  /** SCAN_FMA_EXP: how many of a scan step's decays run on the FMA pipe (0 when left out). */
  scanFmaExp?: number;
  /**
   * SCAN_STAGE_STEPS × SCAN_STAGES of scan-staged.cu (rows a stage, stages in the ring) when not its default; a GPU
   * tuning knob only: the CPU emulator builds the default shape.
   */
  scanStage?: { steps: number; stages: number };
}

export function kernelDefines(build: KernelBuild): string[] {
  const d = [`-DACT_BF16=${build.actBf16 ? 1 : 0}`, `-DD_STATE=${build.dState}`, `-DD_CONV=${build.dConv}`];
  const stage = build.scanStage
    ? [`-DSCAN_STAGE_STEPS=${build.scanStage.steps}`, `-DSCAN_STAGES=${build.scanStage.stages}`]
    : [];
  return [...d, `-DSCAN_FMA_EXP=${build.scanFmaExp ?? 0}`, ...stage];
}

/** The build's name in caches and emulator libraries (every setting kernelDefines passes). */
export function kernelBuildKey(build: KernelBuild): string {
  const stage = build.scanStage ? `-g${build.scanStage.steps}x${build.scanStage.stages}` : '';
  return `${build.actBf16 ? 'bf16' : 'f32'}-s${build.dState}-c${build.dConv}-e${build.scanFmaExp ?? 0}${stage}`;
}

export class KernelSourceError extends Error {
  override name = 'KernelSourceError';
}

/**
 * The folder holding the .cu files: DECISERVE_CUDA_KERNELS, else next to this module (tsx/vitest), else
 * mamba/cuda/kernels under the working directory (an esbuild bundle run from the checkout root).
 */
export function kernelDir(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = [
    env.DECISERVE_CUDA_KERNELS,
    fileURLToPath(new URL('.', import.meta.url)),
    join(process.cwd(), 'mamba', 'cuda', 'kernels'),
  ].filter((d): d is string => !!d);
  const found = candidates.find((d) => existsSync(join(d, KERNEL_HEADER)));
  if (!found)
    throw new KernelSourceError(
      `kernel sources not found (looked in ${candidates.join(', ')}); set DECISERVE_CUDA_KERNELS`,
    );
  return found;
}

export interface KernelSources {
  name: string;
  source: string;
  headers: Record<string, string>;
}

export function loadKernelSources(dir = kernelDir()): KernelSources {
  const headers: Record<string, string> = {};
  for (const file of [KERNEL_HEADER, ...KERNEL_FILES]) headers[file] = readFileSync(join(dir, file), 'utf8');
  const source = KERNEL_FILES.map((f) => `#include "${f}"`).join('\n') + '\n';
  return { name: 'deciserve_kernels.cu', source, headers };
}

/** Launch-shape constants that must match the #defines in the .cu files. */
export const CONV_ROWS = 32; // conv.cu
export const SCAN_THREADS = 128; // scan.cu
export const SCAN_STAGE_DEFAULT = { steps: 8, stages: 3 } as const; // scan-staged.cu: SCAN_STAGE_STEPS × SCAN_STAGES
export const CARRY_LANES = 32; // scan.cu: (channel, state) pairs a warp of scan_carry_segmented
export const CARRY_SEGMENTS = 8; // scan.cu: warps a block of scan_carry_segmented, each a segment of the chunks
export const FUSED_CHANNELS = 8; // scan-fused.cu: channels a block of scan_fused (one warp each)
export const FUSED_T2_CHANNELS = 4; // scan-fused.cu: channels a block of scan_fused_t2 (two warps each)
export const SELECT_THREADS = 1024; // decimate.cu
export const SSM_STEP_THREADS = 128; // step.cu: threads a block of ssm_step_dt
export const SSM_STEP_DBL_MAX = 512; // step.cu: dtRank + 2·dState at most for ssm_step_dt
export const SSM_STEP_SEQS = 4; // step.cu: sequences a thread of ssm_step_dt_s4 steps
export const STEP_GEMV_BATCH = 8; // step-fused.cu: most sequences a fused step takes
export const STEP_GEMV_THREADS = 256; // step-fused.cu: threads a block of every fused step kernel
export const STEP_IN_ROWS = 4; // step-fused.cu: in_proj rows a warp of step_in_proj_conv (32 a block)
export const STEP_OUT_ROWS = 2; // step-fused.cu: out_proj rows a warp of step_out_proj
export const HEAD_ROWS = 4; // step-fused.cu: lm_head rows a warp of head_greedy takes per row block
export const STEP_DBL_MAX = 256; // step-fused.cu: dtRank + 2·dState at most
export const STEP_SMEM_BYTES = 32768; // step-fused.cu: staged GEMV inputs (act_t), so k ≤ 8192 in either build
export const MMA_K_PARTS = 4; // step-mma.cu: warps along k
export const MMA_K_STEPS = 16; // step-mma.cu: 16-wide k steps a warp holds (so d_model ≤ 16·16·4)
export const GEMM_PARTS = 8; // step-gemm.cu: warps along k
export const GEMM_STEPS = 12; // step-gemm.cu: 16-wide k steps a warp holds (so k ≤ 16·12·8)
export const GEMM_SEQS = 16; // step-gemm.cu: sequences a block
