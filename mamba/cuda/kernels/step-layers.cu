// A decode step's every layer in one launch (decode.ts `persistentStep`): the fused step's three stages a layer
// (step-fused.cu: in_proj + conv + x_proj's partial sums; dt_proj + the scan; out_proj) with a grid-wide barrier
// between stages instead of a kernel boundary. At batch 1 a step is ~72 dependent launches whose own work is a few
// microseconds each; what a launch boundary costs on top (the previous grid draining, the next one's blocks
// starting, even with programmatic launch) is what this removes. Each block issues its next stage's weight and state
// loads before it waits at the barrier, as the fused kernels do before pdl_wait. Measured slower than the fused step
// on the H100 (130m batch 1: 0.54 against 0.41 ms a step, cuda-device-check-decode-v13-h100.md): a barrier costs more
// than a programmatic kernel boundary, and a block's next-stage loads wait for its own stage to finish, where the
// fused kernels' next grid loads its weights on other multiprocessors meanwhile. Hence off by default.
// Every block must be resident at once for the barrier: the launcher asks for a cooperative launch of fewer blocks
// than the multiprocessors hold (ops-step.ts stepLayersBlocks), or one block where the device cannot promise it
// (the CPU emulator, whose blocks run one after another). Stages loop over their blocks' work by blockIdx.x +
// k·gridDim.x, so any grid size gives the same sums in the same order as the three kernels.
#include "step-fused.cu"

// One layer's weights (device-weights.ts; ops-step.ts stepLayerTable writes them, 12 pointers in this order), then
// the range they lie in (DeviceLayer.span), for the L2 prefetch.
struct StepLayer {
  const float* norm;
  const act_t* inProj;
  const float* inProjBias;
  const float* convWeight;
  const float* convBias;
  const act_t* xProj;
  const act_t* dtProjT;
  const float* dtBias;
  const float* aLog2;
  const float* dSkip;
  const act_t* outProj;
  const float* outProjBias;
  const char* span;
  i64 spanBytes;
};

// Grid barrier on one counter that starts at 0 and is left as found every second barrier: block 0 adds
// 2³¹ − (blocks − 1), the others 1, so bit 31 flips when the last block arrives, whoever it is. The writes before it
// are made visible to the whole GPU first (__threadfence after the block's __syncthreads); what other blocks wrote is
// read after it through L2 (ld.global.cg, prelude.cuh), never L1. A block that has polled ~2²⁴ times (seconds; a
// step takes under a millisecond) traps, so a grid that cannot all be resident fails the launch instead of hanging.
#define GRID_BARRIER_POLLS (1u << 24)
__device__ __forceinline__ void grid_barrier(u32* counter) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const u32 add = blockIdx.x == 0 ? 0x80000000u - (gridDim.x - 1) : 1u;
    __threadfence();
    const u32 old = atomicAdd(counter, add);
    for (u32 polls = 0; ((old ^ *(volatile u32*)counter) & 0x80000000u) == 0; ++polls) {
#if defined(__CUDA_ARCH__)
      if (polls == GRID_BARRIER_POLLS) __trap();
#endif
    }
    __threadfence();
  }
  __syncthreads();
}

// The barrier before a stage, once a block: inside the block's first work item, after its weight loads, or after the
// stage for a block with no work in it.
struct GridWait {
  u32* counter;
  bool done;
  __device__ void operator()() {
    if (done) return;
    done = true;
    grid_barrier(counter);
  }
};

// hidden [batch, dModel] f32: the last layer's out_proj (the head's input). residual: the pair the fused norm reads
// and writes alternately; the stream ends in residual[nLayer % 2]. xz, x, partial, y: one layer's step buffers, as the
// fused kernels take them. States: layer l at convState + l·dInner·D_CONV and ssmState + l·dInner·D_STATE of each
// sequence's block. barrier: a u32 that is 0 before the first launch. l2Prefetch: each layer first asks L2 for the
// next layer's weights (prelude.cuh l2_prefetch), as the fused step's first launch of a layer does.
extern "C" __global__ void __launch_bounds__(STEP_GEMV_THREADS)
    step_layers(const StepLayer* __restrict__ layers, int nLayer, const int* __restrict__ ids,
                const float* __restrict__ table, float eps, float* hidden, float* residual0, float* residual1,
                act_t* xz, act_t* x, float* partial, act_t* y, float* convState, i64 convSeqStride, float* ssmState,
                i64 ssmSeqStride, u32* barrier, int batch, int dModel, int dInner, int dtRank, int l2Prefetch) {
  __shared__ __align__(16) act_t sIn[STEP_SMEM_ELEMS];
  const int rows = STEP_IN_ROWS * (STEP_GEMV_THREADS / 32), dbl = dtRank + 2 * D_STATE;
  const int inBlocks = (2 * dInner + rows - 1) / rows, xBlocks = (dInner + rows - 1) / rows;
  const int ssmBlocks = (dInner + STEP_GEMV_THREADS / ssm_step_lanes() - 1) / (STEP_GEMV_THREADS / ssm_step_lanes());
  const int outBlocks = (dModel + STEP_OUT_ROWS * (STEP_GEMV_THREADS / 32) - 1) / (STEP_OUT_ROWS * (STEP_GEMV_THREADS / 32));
  // the in_proj stage has no registers to spare beside the loop's own (254 in step_in_proj_conv; NVRTC spilled 32
  // bytes in bf16 with the full chunks): its GEMV loads half as many chunks a round (the same sums in the same order)
  constexpr int IN_CHUNKS = STEP_CHUNKS / 2;
#pragma unroll 1
  for (int l = 0; l < nLayer; ++l) {
    const StepLayer& L = layers[l];
    if (l2Prefetch && l + 1 < nLayer) l2_prefetch(layers[l + 1].span, layers[l + 1].spanBytes, 0, 1);
    float* resIn = l % 2 == 0 ? residual0 : residual1;
    float* resOut = l % 2 == 0 ? residual1 : residual0;
    float* conv = convState + (i64)l * dInner * D_CONV;
    float* ssm = ssmState + (i64)l * dInner * D_STATE;
    // the first layer reads only the token ids and its own state: the launch itself orders it after the last step
    GridWait wait{barrier, l == 0};
    for (int blk = blockIdx.x; blk < inBlocks; blk += gridDim.x)
      in_proj_conv_block<IN_CHUNKS, 0>(sIn, blk, wait, hidden, resIn, resOut, l == 0 ? ids : nullptr, table, L.norm, eps,
                                    L.inProj, L.inProjBias, xz, conv, convSeqStride, L.convWeight, L.convBias, x,
                                    L.xProj, partial, batch, dModel, dInner, dbl);
    wait();
    wait = GridWait{barrier, false};
    for (int item = blockIdx.x; item < ssmBlocks * batch; item += gridDim.x)
      dt_ssm_block(item % ssmBlocks, item / ssmBlocks, wait, partial, xBlocks, x, xz + dInner, 2 * (i64)dInner,
                   L.dtProjT, L.dtBias, L.aLog2, L.dSkip, ssm, ssmSeqStride, y, batch, dInner, dtRank);
    wait();
    wait = GridWait{barrier, false};
    for (int blk = blockIdx.x; blk < outBlocks; blk += gridDim.x)
      out_proj_block(sIn, blk, wait, y, L.outProj, L.outProjBias, hidden, batch, dInner, dModel);
    wait();
  }
}
