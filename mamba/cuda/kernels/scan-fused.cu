// The selective scan in one pass (engine option scan: 'fused'; scan.cu is the default 'split' path):
//   Δ_t = softplus(dt_t + bias)                  (fused into the loads: Δ is never written)
//   h_t = exp(Δ_t·A) ⊙ h_{t−1} + Δ_t·B_t·x_t,   y_t = (C_t·h_t + D ⊙ x_t) ⊙ SiLU(z_t)   (fused into the store)
// Layout: one warp per (sequence, channel), FUSED_CHANNELS warps per block sharing the B/C tile in shared memory.
// A warp walks its sequence in chunks of FUSED_CHUNK steps, each lane holding FUSED_ITEMS consecutive steps. Per
// state n, a lane composes its steps into one affine map h ↦ a·h + b, a warp scan of those maps (shfl_up) gives each
// lane the map of everything before it in the chunk, and the carry h (same in every lane) enters at the chunk start;
// each step's exp is computed once and kept in registers for the output walk. So x, dt, z, B, C are read once and y
// written once, and the recurrence is evaluated once (the split path runs it twice and writes Δ and chunk states).
// rowIdx (nullable): compacted row j of a sequence reads its inputs from row rowIdx[j] (DeciMamba's kept rows), so no
// gather of x/Δ/z/B/C is needed; y and seqStart are in the compacted layout.
#include "prelude.cuh"

#define FUSED_ITEMS 8       // consecutive time steps per lane
#define FUSED_CHANNELS 8    // warps (channels) per block: 8 f32 channels fill a 32-byte sector of a dt row
#define FUSED_CHUNK (32 * FUSED_ITEMS)
// a state's row of the tile: one pad word per lane (lanes read 9 words apart), +1 so that the staging writes, which
// walk the states of a step, fall in 16 different banks
#define FUSED_PAD (FUSED_CHUNK + FUSED_CHUNK / FUSED_ITEMS + 1)

// Slot of step t in a state's row of the shared tile: lane-major with a pad word, so lane reads hit distinct banks.
__device__ __forceinline__ int fused_slot(int t) { return (t / FUSED_ITEMS) * (FUSED_ITEMS + 1) + t % FUSED_ITEMS; }

extern "C" __global__ void __launch_bounds__(32 * FUSED_CHANNELS)
scan_fused(const act_t* __restrict__ x, i64 xStride, const float* __restrict__ dt, i64 dtStride,
           const float* __restrict__ dtBias, const act_t* __restrict__ z, i64 zStride, const act_t* __restrict__ bMat,
           i64 bStride, const act_t* __restrict__ cMat, i64 cStride, const float* __restrict__ aLog2,
           const float* __restrict__ dSkip, const int* __restrict__ seqStart, const int* __restrict__ rowIdx,
           const float* __restrict__ h0, i64 h0SeqStride, float* __restrict__ hOut, i64 hOutSeqStride,
           act_t* __restrict__ y, i64 yStride, int dInner) {
  __shared__ float sB[D_STATE][FUSED_PAD];
  __shared__ float sC[D_STATE][FUSED_PAD];
  const int s = blockIdx.x;
  const int lane = threadIdx.x & 31;
  const int c = blockIdx.y * FUSED_CHANNELS + (threadIdx.x >> 5);
  const bool active = c < dInner;
  const int start = seqStart[s], len = seqStart[s + 1] - start;
  float a[D_STATE], carry[D_STATE];
#pragma unroll
  for (int n = 0; n < D_STATE; ++n) {
    a[n] = active ? aLog2[c * D_STATE + n] : 0.0f;
    carry[n] = active && h0 ? h0[(i64)s * h0SeqStride + (i64)c * D_STATE + n] : 0.0f;
  }
  const float bias = active && dtBias ? dtBias[c] : 0.0f;
  const float dc = active ? dSkip[c] : 0.0f;
  for (int t0 = 0; t0 < len; t0 += FUSED_CHUNK) {
    const int tl = min(FUSED_CHUNK, len - t0);
    __syncthreads();  // the previous chunk's tile is no longer read
    for (int i = threadIdx.x; i < tl * D_STATE; i += blockDim.x) {
      const int t = i / D_STATE, n = i % D_STATE;
      const i64 row = rowIdx ? rowIdx[start + t0 + t] : start + t0 + t;
      sB[n][fused_slot(t)] = act_load(bMat + row * bStride + n);
      sC[n][fused_slot(t)] = act_load(cMat + row * cStride + n);
    }
    __syncthreads();
    // this lane's steps: Δ, Δ·x and the D·x part of y (steps past the chunk's end are identity maps: Δ = 0)
    float dl[FUSED_ITEMS], dx[FUSED_ITEMS], acc[FUSED_ITEMS];
#pragma unroll
    for (int i = 0; i < FUSED_ITEMS; ++i) {
      const int t = lane * FUSED_ITEMS + i;
      dl[i] = dx[i] = acc[i] = 0.0f;
      if (active && t < tl) {
        const i64 row = rowIdx ? rowIdx[start + t0 + t] : start + t0 + t;
        const float raw = dt[row * dtStride + c];
        const float xv = act_load(x + row * xStride + c);
        dl[i] = dtBias ? softplus_f(raw + bias) : raw;
        dx[i] = dl[i] * xv;
        acc[i] = dc * xv;
      }
    }
#pragma unroll
    for (int n = 0; n < D_STATE; ++n) {  // unrolled: a[] and carry[] stay in registers
      const float* bRow = sB[n] + lane * (FUSED_ITEMS + 1);
      const float* cRow = sC[n] + lane * (FUSED_ITEMS + 1);
      float decay[FUSED_ITEMS], pa = 1.0f, pb = 0.0f;
#pragma unroll
      for (int i = 0; i < FUSED_ITEMS; ++i) {
        decay[i] = exp2f(dl[i] * a[n]);
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
      float h = lane == 0 ? carry[n] : ea * carry[n] + eb;  // the state before this lane's first step
#pragma unroll
      for (int i = 0; i < FUSED_ITEMS; ++i) {
        h = decay[i] * h + dx[i] * bRow[i];
        acc[i] += cRow[i] * h;
      }
      carry[n] = ta * carry[n] + tb;
    }
#pragma unroll
    for (int i = 0; i < FUSED_ITEMS; ++i) {
      const int t = lane * FUSED_ITEMS + i;
      if (active && t < tl) {
        const i64 row = rowIdx ? rowIdx[start + t0 + t] : start + t0 + t;
        act_store(y + (i64)(start + t0 + t) * yStride + c, acc[i] * silu_f(act_load(z + row * zStride + c)));
      }
    }
  }
  if (!active || lane != 0) return;
#pragma unroll
  for (int n = 0; n < D_STATE; ++n) hOut[(i64)s * hOutSeqStride + (i64)c * D_STATE + n] = carry[n];
}
