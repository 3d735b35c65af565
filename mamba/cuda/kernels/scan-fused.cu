// The selective scan in one pass (engine option scan: 'fused' | 'fused-t2'; scan.cu is the default 'split' path):
//   Δ_t = softplus(dt_t + bias)                  (fused into the loads: Δ is never written)
//   h_t = exp(Δ_t·A) ⊙ h_{t−1} + Δ_t·B_t·x_t,   y_t = (C_t·h_t + D ⊙ x_t) ⊙ SiLU(z_t)   (fused into the store)
// Layout: TW warps per (sequence, channel), CH channels per block sharing the B/C tile in shared memory. The warps
// of a channel walk its sequence in chunks of TW·32·ITEMS steps, each lane holding ITEMS consecutive steps. Per
// state n, a lane composes its steps into one affine map h ↦ a·h + b, a warp scan of those maps (shfl_up) gives each
// lane the map of everything before it in its warp, the TW warp totals (through shared memory) and the carry h give
// each warp its start; the carry passes to the next chunk. Each step's exp is computed once and kept in registers
// for the output walk. So x, dt, z, B, C are read once and y written once, and the recurrence is evaluated once (the
// split path runs it twice and writes Δ and the chunk states). Δ, x, z and y pass through one shared staging tile,
// loaded and stored a row of CH channels at a time (a lane reading its own ITEMS steps from global memory touched 32
// rows per warp load). Measured on the H200 (bench/results/cuda-scan-compare.json) that changed nothing: 76.7 ms at
// 130m bf16 32K either way, 1.7x split; the per-state warp scan's latency chain is the suspect, not memory.
// rowIdx (nullable): compacted row j of a sequence reads its inputs from row rowIdx[j] (DeciMamba's kept rows), so no
// gather of x/Δ/z/B/C is needed; y and seqStart are in the compacted layout.
#include "prelude.cuh"

#define FUSED_CHANNELS 8     // channels a block of scan_fused: 8 f32 channels fill a 32-byte sector of a dt row
#define FUSED_T2_CHANNELS 4  // channels a block of scan_fused_t2 (kernels/manifest.ts has both for the launches)

__device__ __forceinline__ i64 fused_row(const int* __restrict__ rowIdx, int r) { return rowIdx ? rowIdx[r] : r; }

// rows [row0, row0 + tl) of a [rows × dInner] activation, this block's CH channels, into the staging tile (zeros past
// the chunk's end or the last channel)
template <int CH, int ITEMS, int CHUNK, int PAD_STAGE>
__device__ __forceinline__ void stage_rows(float (*sStage)[PAD_STAGE], const act_t* __restrict__ src, i64 stride,
                                           const int* __restrict__ rowIdx, int row0, int tl, int dInner) {
  for (int i = threadIdx.x; i < CHUNK * CH; i += blockDim.x) {
    const int t = i / CH, k = i % CH, ch = blockIdx.y * CH + k;
    sStage[k][(t / ITEMS) * (ITEMS + 1) + t % ITEMS] =
        t < tl && ch < dInner ? act_load(src + fused_row(rowIdx, row0 + t) * stride + ch) : 0.0f;
  }
}

template <int CH, int TW, int ITEMS>
__device__ __forceinline__ void scan_fused_body(
    const act_t* __restrict__ x, i64 xStride, const float* __restrict__ dt, i64 dtStride,
    const float* __restrict__ dtBias, const act_t* __restrict__ z, i64 zStride, const act_t* __restrict__ bMat,
    i64 bStride, const act_t* __restrict__ cMat, i64 cStride, const float* __restrict__ aLog2,
    const float* __restrict__ dSkip, const int* __restrict__ seqStart, const int* __restrict__ rowIdx,
    const float* __restrict__ h0, i64 h0SeqStride, float* __restrict__ hOut, i64 hOutSeqStride,
    act_t* __restrict__ y, i64 yStride, int dInner) {
  constexpr int CHUNK = TW * 32 * ITEMS;
  // a state's row of the tile: lane-major with one pad word per lane (lanes read ITEMS+1 words apart), +1 so that the
  // staging writes, which walk the states of a step, fall in 16 different banks
  constexpr int PAD = CHUNK + CHUNK / ITEMS + 1;
  __shared__ float sB[D_STATE][PAD];
  __shared__ float sC[D_STATE][PAD];
  // Δ, then x, then z and y of the chunk, per channel in the same lane-major slots; the pad makes a warp's staging
  // row accesses (32/CH rows of CH channels) fall in 32 different banks
  constexpr int PAD_STAGE = CHUNK + CHUNK / ITEMS + 32 / CH;
  __shared__ float sStage[CH][PAD_STAGE];
  __shared__ float sTot[TW > 1 ? D_STATE : 1][CH][TW][2];  // each warp's map over its steps, per state
  // TW > 1: the carry lives here (all warps of a channel share it; frees 16 registers), by chunk parity
  __shared__ float sCarry[TW > 1 ? 2 : 1][CH][D_STATE];
  const int s = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int cw = warp % CH, tw = warp / CH;
  const int c = blockIdx.y * CH + cw;
  const int slot0 = (tw * 32 + lane) * (ITEMS + 1);  // this lane's first step in a tile row
  const bool active = c < dInner;
  const int start = seqStart[s], len = seqStart[s + 1] - start;
  float a[D_STATE], carry[D_STATE];
#pragma unroll
  for (int n = 0; n < D_STATE; ++n) {
    a[n] = active ? aLog2[c * D_STATE + n] : 0.0f;
    carry[n] = active && h0 ? h0[(i64)s * h0SeqStride + (i64)c * D_STATE + n] : 0.0f;
    if (TW > 1 && tw == 0 && lane == 0) sCarry[0][cw][n] = carry[n];
  }
  int parity = 0;  // TW > 1: sCarry[parity] holds the carry into the current chunk
  const float dc = active ? dSkip[c] : 0.0f;
  for (int t0 = 0; t0 < len; t0 += CHUNK) {
    const int tl = min(CHUNK, len - t0);
    __syncthreads();  // the previous chunk's tile (and warp totals) are no longer read
    for (int i = threadIdx.x; i < CHUNK * D_STATE; i += blockDim.x) {  // zeros past the end keep identity steps finite
      const int t = i / D_STATE, n = i % D_STATE;
      const int slot = (t / ITEMS) * (ITEMS + 1) + t % ITEMS;
      const i64 row = t < tl ? fused_row(rowIdx, start + t0 + t) : 0;
      sB[n][slot] = t < tl ? act_load(bMat + row * bStride + n) : 0.0f;
      sC[n][slot] = t < tl ? act_load(cMat + row * cStride + n) : 0.0f;
    }
    __syncthreads();
    // Δ of the chunk into the staging tile, a row of CH channels at a time (steps past the chunk's end: Δ = 0)
    for (int i = threadIdx.x; i < CHUNK * CH; i += blockDim.x) {
      const int t = i / CH, k = i % CH, ch = blockIdx.y * CH + k;
      float v = 0.0f;
      if (t < tl && ch < dInner) {
        const float raw = dt[fused_row(rowIdx, start + t0 + t) * dtStride + ch];
        v = dtBias ? softplus_f(raw + dtBias[ch]) : raw;
      }
      sStage[k][(t / ITEMS) * (ITEMS + 1) + t % ITEMS] = v;
    }
    __syncthreads();
    // this lane's steps: Δ, Δ·x and the D·x part of y (steps past the chunk's end are identity maps: Δ = 0)
    float dl[ITEMS], dx[ITEMS], acc[ITEMS];
#pragma unroll
    for (int i = 0; i < ITEMS; ++i) dl[i] = sStage[cw][slot0 + i];
    __syncthreads();
    stage_rows<CH, ITEMS, CHUNK, PAD_STAGE>(sStage, x, xStride, rowIdx, start + t0, tl, dInner);
    __syncthreads();
#pragma unroll
    for (int i = 0; i < ITEMS; ++i) {
      const float xv = sStage[cw][slot0 + i];
      dx[i] = dl[i] * xv;
      acc[i] = dc * xv;
    }
    __syncthreads();
    stage_rows<CH, ITEMS, CHUNK, PAD_STAGE>(sStage, z, zStride, rowIdx, start + t0, tl, dInner);  // read after the scan
#pragma unroll
    for (int n = 0; n < D_STATE; ++n) {  // unrolled: a[] and carry[] stay in registers
      const float* bRow = sB[n] + slot0;
      const float* cRow = sC[n] + slot0;
      float decay[ITEMS], pa = 1.0f, pb = 0.0f;
#pragma unroll
      for (int i = 0; i < ITEMS; ++i) {
        decay[i] = scan_decay(n, dl[i] * a[n]);
        pb = decay[i] * pb + dx[i] * bRow[i];
        pa *= decay[i];
      }
      // inclusive warp scan of the maps (earlier ∘ later): (a1, b1) then (a2, b2) = (a1·a2, a2·b1 + b2)
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const float ea = __shfl_up_sync(0xffffffffu, pa, o);
        const float eb = __shfl_up_sync(0xffffffffu, pb, o);
        if (lane >= o) {
          pb = pa * eb + pb;
          pa = ea * pa;
        }
      }
      const float ea = __shfl_up_sync(0xffffffffu, pa, 1);
      const float eb = __shfl_up_sync(0xffffffffu, pb, 1);
      const float ta = __shfl_sync(0xffffffffu, pa, 31);
      const float tb = __shfl_sync(0xffffffffu, pb, 31);
      float hWarp;  // the state before this warp's first step
      if (TW > 1) {
        if (lane == 0) {
          sTot[n][cw][tw][0] = ta;
          sTot[n][cw][tw][1] = tb;
        }
        __syncthreads();
        float hw = sCarry[parity][cw][n];
        hWarp = hw;
#pragma unroll
        for (int w = 0; w < TW; ++w) {
          if (w == tw) hWarp = hw;
          hw = sTot[n][cw][w][0] * hw + sTot[n][cw][w][1];
        }
        if (tw == 0 && lane == 0) sCarry[parity ^ 1][cw][n] = hw;  // read next chunk, after its top barrier
      } else {
        hWarp = carry[n];
        carry[n] = ta * carry[n] + tb;
      }
      float h = lane == 0 ? hWarp : ea * hWarp + eb;  // the state before this lane's first step
#pragma unroll
      for (int i = 0; i < ITEMS; ++i) {
        h = decay[i] * h + dx[i] * bRow[i];
        acc[i] += cRow[i] * h;
      }
    }
    __syncthreads();  // z is staged
#pragma unroll
    for (int i = 0; i < ITEMS; ++i) sStage[cw][slot0 + i] = acc[i] * silu_f(sStage[cw][slot0 + i]);  // y, in place
    __syncthreads();
    for (int i = threadIdx.x; i < CHUNK * CH; i += blockDim.x) {  // y rows out, CH channels at a time
      const int t = i / CH, k = i % CH, ch = blockIdx.y * CH + k;
      if (t < tl && ch < dInner)
        act_store(y + (i64)(start + t0 + t) * yStride + ch, sStage[k][(t / ITEMS) * (ITEMS + 1) + t % ITEMS]);
    }
    parity ^= 1;
  }
  if (TW > 1) __syncthreads();  // the last chunk's carry write is visible
  if (!active || lane != 0 || tw != 0) return;
#pragma unroll
  for (int n = 0; n < D_STATE; ++n) {
    hOut[(i64)s * hOutSeqStride + (i64)c * D_STATE + n] = TW > 1 ? sCarry[parity][cw][n] : carry[n];
  }
}

#define SCAN_FUSED_PARAMS                                                                                 \
  const act_t *__restrict__ x, i64 xStride, const float *__restrict__ dt, i64 dtStride,                    \
      const float *__restrict__ dtBias, const act_t *__restrict__ z, i64 zStride,                          \
      const act_t *__restrict__ bMat, i64 bStride, const act_t *__restrict__ cMat, i64 cStride,            \
      const float *__restrict__ aLog2, const float *__restrict__ dSkip, const int *__restrict__ seqStart,  \
      const int *__restrict__ rowIdx, const float *__restrict__ h0, i64 h0SeqStride,                       \
      float *__restrict__ hOut, i64 hOutSeqStride, act_t *__restrict__ y, i64 yStride, int dInner
#define SCAN_FUSED_ARGS \
  x, xStride, dt, dtStride, dtBias, z, zStride, bMat, bStride, cMat, cStride, aLog2, dSkip, seqStart, rowIdx, h0, \
      h0SeqStride, hOut, hOutSeqStride, y, yStride, dInner

// One warp a channel, 8 steps a lane: 256-step chunks.
extern "C" __global__ void __launch_bounds__(32 * FUSED_CHANNELS) scan_fused(SCAN_FUSED_PARAMS) {
  scan_fused_body<FUSED_CHANNELS, 1, 8>(SCAN_FUSED_ARGS);
}
// Two warps a channel, 4 steps a lane (also 256-step chunks): twice the warps, for batch-1 prompts of narrow models
// (130m: 3,072 warps). 3 blocks an SM (≤85 registers) make that one wave on an H200's 132 SMs.
extern "C" __global__ void __launch_bounds__(64 * FUSED_T2_CHANNELS, 3) scan_fused_t2(SCAN_FUSED_PARAMS) {
  scan_fused_body<FUSED_T2_CHANNELS, 2, 4>(SCAN_FUSED_ARGS);
}
