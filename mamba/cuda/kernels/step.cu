// Decoding: one new token per sequence, states updated in place.
// State layouts match LayerState: conv [D, D_CONV] oldest first, ssm [D, D_STATE]; stateSeqStride steps sequences.
#include "prelude.cuh"

#define XPROJ_CHANNELS 256 // channels a block of conv_x_proj_step (a thread a channel), 32 lanes × 8
#define XPROJ_SEQS 4       // sequences a block of conv_x_proj_step (each weight load serves them all)
#define XPROJ_COLS 4       // x_proj columns a warp loads before it uses any

// 8 consecutive weights of one x_proj row from channel c (one load_chunk8 where the row allows it), zero past dInner
__device__ __forceinline__ void load_w8(const act_t* __restrict__ p, int c, int dInner, float* w) {
  if (dInner % 8 == 0 && c + 8 <= dInner) {
    unpack_chunk8(load_chunk8(p), w);
    return;
  }
#pragma unroll
  for (int e = 0; e < 8; ++e) w[e] = c + e < dInner ? act_load(p + e) : 0.0f;
}

// A decode step's conv + SiLU and x_proj in one launch: per (sequence, channel) conv state ← shift left, append x
// (pre-conv), x = SiLU(Σ_k w[k]·state[k] + b); then x_dbl = x_proj(x). Grid (channel blocks, sequence tiles): each block convolves
// its XPROJ_CHANNELS channels of XPROJ_SEQS sequences and writes x_proj's partial sums over them [blocks, batch, dbl];
// the last block of a sequence tile to finish (arrivals, reset by it for the next launch) adds the partials up in
// block order, so a step gives the same x_dbl every run (no float atomics), rounded as the x_proj GEMM's act_t output.
// It replaces a conv_step launch and a cuBLAS GEMM of 80 columns (~3 + ~5 µs a layer at batch 64 of 130m, H100).
// Launched as a programmatic dependent it reads its conv state and weights before waiting on in_proj's output.
extern "C" __global__ void __launch_bounds__(XPROJ_CHANNELS)
    conv_x_proj_step(const act_t* xPre, i64 xStride, float* __restrict__ convState, i64 stateSeqStride,
                     const float* __restrict__ convW, const float* __restrict__ convB, act_t* __restrict__ xOut,
                     const act_t* __restrict__ wx, float* __restrict__ partial, u32* __restrict__ arrivals,
                     act_t* __restrict__ xDbl, i64 dblStride, int batch, int dInner, int dbl) {
  __shared__ float sx[XPROJ_SEQS][XPROJ_CHANNELS];
  __shared__ bool sLast;
  pdl_trigger();
  const int c0 = blockIdx.x * XPROJ_CHANNELS, b0 = blockIdx.y * XPROJ_SEQS, tb = min(XPROJ_SEQS, batch - b0);
  const int c = c0 + threadIdx.x;
  const bool live = c < dInner;
  ConvTaps taps[XPROJ_SEQS];
#pragma unroll
  for (int j = 0; j < XPROJ_SEQS; ++j)
    if (live && j < tb)
      taps[j] = conv_taps(convState + (i64)(b0 + j) * stateSeqStride + (i64)c * D_CONV, convW + c * D_CONV, convB ? convB[c] : 0.0f);
  pdl_wait();  // x (pre-conv) is in_proj's output
#pragma unroll
  for (int j = 0; j < XPROJ_SEQS; ++j) {
    float xv = 0.0f;
    if (live && j < tb) {
      float* st = convState + (i64)(b0 + j) * stateSeqStride + (i64)c * D_CONV;
      xv = act_round(silu_f(conv_shift(st, taps[j], ld_cg_act(xPre + (i64)(b0 + j) * xStride + c))));
      act_store(xOut + (i64)(b0 + j) * dInner + c, xv);
    }
    sx[j][threadIdx.x] = xv;  // as the GEMM would read x: rounded to act_t
  }
  __syncthreads();

  // partial sums: warp w takes columns w, w + warps, ...; lane l the block's channels 8l..8l+7
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = XPROJ_CHANNELS / 32;
  const int cl = 8 * lane;
  float xs[XPROJ_SEQS][8];
#pragma unroll
  for (int j = 0; j < XPROJ_SEQS; ++j)
#pragma unroll
    for (int e = 0; e < 8; ++e) xs[j][e] = sx[j][cl + e];
  for (int col0 = warp; col0 < dbl; col0 += warps * XPROJ_COLS) {
    float w[XPROJ_COLS][8];
#pragma unroll
    for (int u = 0; u < XPROJ_COLS; ++u) {
      const int col = col0 + u * warps;
      if (col < dbl) load_w8(wx + (i64)col * dInner + c0 + cl, c0 + cl, dInner, w[u]);
    }
#pragma unroll
    for (int u = 0; u < XPROJ_COLS; ++u) {
      const int col = col0 + u * warps;
      if (col >= dbl) break;
#pragma unroll
      for (int j = 0; j < XPROJ_SEQS; ++j) {
        if (j >= tb) break;
        float s = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) s += w[u][e] * xs[j][e];
        s = warp_sum_f(s);
        if (lane == 0) partial[((i64)blockIdx.x * batch + b0 + j) * dbl + col] = s;
      }
    }
  }

  __threadfence();  // the partial sums are visible before this block counts as arrived
  __syncthreads();
  if (threadIdx.x == 0) sLast = atomicAdd(&arrivals[blockIdx.y], 1u) == gridDim.x - 1;
  __syncthreads();
  if (!sLast) return;
  __threadfence();
  for (int i = threadIdx.x; i < tb * dbl; i += blockDim.x) {
    const int j = i / dbl, col = i - j * dbl;
    float s = 0.0f;
#pragma unroll 8
    for (int blk = 0; blk < (int)gridDim.x; ++blk) s += ld_cg_f32(partial + ((i64)blk * batch + b0 + j) * dbl + col);
    act_store(xDbl + (i64)(b0 + j) * dblStride + col, s);
  }
  if (threadIdx.x == 0) arrivals[blockIdx.y] = 0;
}

#define SSM_STEP_THREADS 128
#define SSM_STEP_DBL_MAX 512 // dtRank + 2·dState at most (ops.ts ssmStepDt checks)

// Δ = softplus(dt_proj(dt) + bias) from x_proj's output row [dt | B | C], then h ← exp(Δ·A) ⊙ h + Δ·B·x and
// y = (C·h + D·x) ⊙ SiLU(z), so a step needs no dt_proj GEMM and no dt_softplus launch. Lanes of a channel split
// dt_proj's sum and the state (prelude.cuh ssm_lane_step); a warp's state loads and stores are contiguous (a thread a
// channel, 16 loads 64 bytes apart, took 26 µs for batch 64 of 130m on the H100, for 6 MB). Grid: (channel blocks,
// batch). (Four sequences a block, each lane's dt_proj weights loaded once for the four, was 10% slower at batch 64.)
extern "C" __global__ void __launch_bounds__(SSM_STEP_THREADS)
    ssm_step_dt(const act_t* x, const act_t* xDbl, i64 dblStride, const act_t* z, i64 zStride, const act_t* __restrict__ wdtT,
                const float* __restrict__ dtBias, const float* __restrict__ aLog2, const float* __restrict__ dSkip,
                float* __restrict__ ssmState, i64 stateSeqStride, act_t* __restrict__ y, int dInner, int dtRank) {
  const int dbl = dtRank + 2 * D_STATE;
  constexpr int LANES = ssm_step_lanes(), RUN = D_STATE / LANES, PREFETCH = dt_prefetch<LANES>();
  pdl_trigger();
  const int b = blockIdx.y, q = threadIdx.x % LANES;
  const int c = blockIdx.x * (SSM_STEP_THREADS / LANES) + threadIdx.x / LANES;
  const bool live = c < dInner;
  const int cc = live ? c : dInner - 1;  // every lane stays for the shuffles
  float wdt[PREFETCH], a2[RUN], h[RUN];
  load_dt_weights<LANES, PREFETCH>(wdt, wdtT, q, dtRank, dInner, cc);
  float* hp = ssmState + (i64)b * stateSeqStride + (i64)cc * D_STATE + q * RUN;
  load_run<RUN>(hp, h);
  load_run<RUN>(aLog2 + (i64)cc * D_STATE + q * RUN, a2);
  const float bias = dtBias[cc], dSkipC = dSkip[cc];
  pdl_wait();  // x and x_dbl are conv_x_proj_step's output
  const float xv = ld_cg_act(x + (i64)b * dInner + cc);
  const float zv = q == 0 ? ld_cg_act(z + (i64)b * zStride + cc) : 0.0f;
  // x_dbl's row staged in shared memory, every thread loading at once (read where used, each lane's ~50 loads of it
  // would wait in turn: they are volatile, for the programmatic launch)
  __shared__ float sxd[SSM_STEP_DBL_MAX];
  for (int i = threadIdx.x; i < dbl; i += SSM_STEP_THREADS) sxd[i] = ld_cg_act(xDbl + (i64)b * dblStride + i);
  __syncthreads();
  const auto xd = [&](int i) { return sxd[i]; };
  const float acc = ssm_lane_step<LANES, RUN, PREFETCH>(xd, q, wdt, wdtT, dtRank, dInner, cc, bias, xv, h, a2);
  if (!live) return;
  store_run<RUN>(hp, h);
  if (q == 0) act_store(y + (i64)b * dInner + c, (acc + dSkipC * xv) * silu_f(zv));
}
