// The two numbers METHOD.md asks for before timing anything, per prefill configuration: the floating-point work and
// the fewest bytes that must cross device memory, set against the H200's ceilings as the committed device check measured
// them (bench/results/cuda-device-check.json info.ceilings: cuBLAS bf16 GEMM 8192³ from Node, device-to-device copy). Rows per layer come from the BatchPlan, so DeciMamba's
// shorter later layers count as they run. Pure TypeScript.
import deviceCheck from '../../bench/results/cuda-device-check.json' with { type: 'json' };
import type { MambaConfig } from '../engine.ts';
import { outputGroup, type BatchPlan } from './batch-plan.ts';
import { activationBytes, xDblWidth, type Precision } from './memory-plan.ts';

export const H200 = {
  /** cuBLAS bf16 GEMM 8192³ measured from Node on this workplace's H200 (781 TFLOP/s in the committed run). */
  matmulFlops: deviceCheck.info.ceilings.bf16GemmTflops * 1e12,
  /** Datasheet fp32 (CUDA cores, no TF32): the ceiling of the fp32 parity path's GEMMs. */
  fp32Flops: 67e12,
  /** Device-to-device copy, bytes read + written, measured likewise (4,225 GB/s; KINDS.md says 4.3 TB/s). */
  bandwidth: deviceCheck.info.ceilings.copyGBs * 1e9,
  /** MUFU ex2 throughput: 16 per SM per clock × 132 SMs × 1.98 GHz (the scan's exp(Δ·A)). */
  expPerSecond: 16 * 132 * 1.98e9,
};

export interface Roofline {
  /** GEMM FLOPs (in_proj, x_proj, dt_proj, out_proj, lm_head). */
  matmulFlops: number;
  /** Everything else (conv, scan, norms, gates). */
  otherFlops: number;
  /** exp() calls of this scan design: one per token, channel and state in each of its two passes. */
  exps: number;
  /** Compulsory traffic: weights once, ids in, requested logits and final states out. */
  minBytes: number;
  /** Traffic of this kernel design: every intermediate written once and read where the kernels read it. */
  designBytes: number;
  /** max(matmul time at the GEMM ceiling, minBytes at the bandwidth): no version of the forward beats this. */
  floorMs: number;
  /** The floor with this design's traffic and the scan's exp throughput also counted. */
  designFloorMs: number;
}

export interface RooflineInput {
  config: MambaConfig;
  precision: Precision;
  plan: BatchPlan;
  /** Rows of logits computed (lm_head only at these). */
  logitRows: number;
}

export function prefillRoofline({ config, precision, plan, logitRows }: RooflineInput): Roofline {
  const { dModel, dInner, dState, dConv, dtRank, nLayer, vocabSize } = config;
  const act = activationBytes(precision);
  const w = precision === 'bf16' ? 2 : 4;
  const dbl = xDblWidth(config);
  let matmul = 0;
  let other = 0;
  let exps = 0;
  let design = 0;
  for (let i = 0; i < nLayer; i++) {
    const rowsIn = plan.groups[plan.layerGroup[i]!]!.rows;
    const rowsOut = plan.groups[outputGroup(plan, i)]!.rows;
    matmul += 2 * rowsIn * (dModel * 2 * dInner + dInner * dbl + dtRank * dInner) + 2 * rowsOut * dInner * dModel;
    other += rowsIn * (2 * dInner * dConv + 4 * dInner + 4 * dModel) + rowsOut * (7 * dInner * dState + 6 * dInner);
    exps += 2 * rowsOut * dInner * dState; // pass 1 and pass 3 both run the recurrence
    // add_rmsnorm: hidden, residual in; residual, normed out
    design += rowsIn * dModel * (4 + 4 + 4 + act);
    // in_proj: normed in, xz out; conv: x in, x out; x_proj: x in, x_dbl out; dt_proj: dt in, Δ out; softplus: Δ in/out
    design +=
      rowsIn * (dModel * act + 2 * dInner * act) + rowsIn * 2 * dInner * act + rowsIn * (dInner * act + dbl * act);
    design += rowsIn * (dtRank * act + dInner * 4) + rowsIn * dInner * 8;
    // scan: pass 1 reads x, Δ, B; pass 3 reads x, Δ, z, B, C and writes y; out_proj: y in, hidden out
    design += rowsOut * (dInner * (act + 4) + dState * act) + rowsOut * (dInner * (3 * act + 4) + 2 * dState * act);
    design += rowsOut * (dInner * act + dModel * 4);
    if (rowsOut < rowsIn)
      design += rowsIn * dInner * 4 + rowsOut * (dInner * (2 * act + 4) + 2 * dState * act + dModel * 4) * 2;
  }
  matmul += 2 * logitRows * dModel * vocabSize;
  const weightBytes =
    nLayer * (dModel * 2 * dInner + dInner * dbl + dtRank * dInner + dInner * dModel) * w +
    vocabSize * dModel * (w + 4);
  const stateBytes = plan.nSeq * nLayer * dInner * (dConv + dState) * 4;
  const minBytes = weightBytes + plan.groups[0]!.rows * 4 + logitRows * vocabSize * 4 + stateBytes;
  design += minBytes;
  const flopsCeiling = precision === 'bf16' ? H200.matmulFlops : H200.fp32Flops;
  const floorMs = 1e3 * Math.max(matmul / flopsCeiling, minBytes / H200.bandwidth);
  const designFloorMs = 1e3 * Math.max(matmul / flopsCeiling, design / H200.bandwidth, exps / H200.expPerSecond);
  return { matmulFlops: matmul, otherFlops: other, exps, minBytes, designBytes: design, floorMs, designFloorMs };
}
