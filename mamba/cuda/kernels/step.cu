// Decoding: one new token per sequence, states updated in place.
// State layouts match LayerState: conv [D, D_CONV] oldest first, ssm [D, D_STATE]; stateSeqStride steps sequences.
#include "prelude.cuh"

// conv state ← shift left, append x (pre-conv); x_out = SiLU(Σ_k w[k]·state[k] + b); x_proj then runs as a cuBLAS
// GEMM. (conv + SiLU and x_proj in one launch, partial sums over 256-channel blocks added by the last block to arrive,
// was slower at every batch on the H100: 13 µs a layer at batch 1 and 20 at 64 against 4 + 7 and 5.6 + 7.3 for these
// two launches, cuda-device-check-decode-v10-h100.json: six blocks at 130m left the GPU idle.) As a programmatic
// dependent it reads its state and weights before waiting on in_proj's output. Meanwhile it asks L2 for the scan's
// states (prelude.cuh l2_prefetch), which ssm_step_dt reads two launches later.
extern "C" __global__ void conv_step(const act_t* x, i64 xStride, float* __restrict__ convState, i64 stateSeqStride,
                                     const float* __restrict__ weight, const float* __restrict__ bias,
                                     act_t* __restrict__ xOut, int batch, int dInner, L2_PREFETCH_PARAMS) {
  pdl_trigger();
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  const bool live = i < (i64)batch * dInner;
  const int b = live ? (int)(i / dInner) : 0, c = live ? (int)(i % dInner) : 0;
  float* st = convState + (i64)b * stateSeqStride + (i64)c * D_CONV;
  ConvTaps taps;
  if (live) taps = conv_taps(st, weight + c * D_CONV, bias ? bias[c] : 0.0f);
  l2_prefetch(L2_PREFETCH_ARGS);  // after this block's own loads, while it would wait anyway
  if (!live) return;
  pdl_wait();  // x (pre-conv) is in_proj's output
  act_store(xOut + (i64)b * dInner + c, silu_f(conv_shift(st, taps, ld_cg_act(x + (i64)b * xStride + c))));
}

#define SSM_STEP_THREADS 128
#define SSM_STEP_DBL_MAX 512 // dtRank + 2·dState at most (ops.ts ssmStepDt checks)
#define SSM_STEP_SEQS 4      // sequences a thread of ssm_step_dt_s4 steps
#define SSM_STAGE_LOADS 4    // x_dbl loads a thread of ssm_step_dt issues before it stores any

// Δ = softplus(dt_proj(dt) + bias) from x_proj's output row [dt | B | C], then h ← exp(Δ·A) ⊙ h + Δ·B·x and
// y = (C·h + D·x) ⊙ SiLU(z), so a step needs no dt_proj GEMM and no dt_softplus launch. Lanes of a channel split
// dt_proj's sum and the state (prelude.cuh ssm_lane_steps); a warp's state loads and stores are contiguous (a thread a
// channel, 16 loads 64 bytes apart, took 26 µs for batch 64 of 130m on the H100, for 6 MB). Grid: (channel blocks,
// sequence tiles of S). S = 1 (ssm_step_dt): at 60 registers 8 blocks fit an SM, so batch 64 of 130m is 3 waves of
// blocks and of 1.4b 8 (12.5 and 36.7 µs a layer, v11). S = 4 (ssm_step_dt_s4): a thread steps its channel in 4
// sequences, every state load issued before any is used, and dt_proj's weights, A and the bias serve all 4. At batch
// 64 of 130m that is one wave of 768 blocks at 79 registers, a warp issuing every 13.5 cycles, half of them waiting on
// loads (ncu, cuda-ncu-ssm-s4-b64.txt): S = 2 (ssm_step_dt_s2) doubles the warps in flight.
template <int S>
__device__ __forceinline__ void ssm_step_dt_tile(const act_t* x, const act_t* xDbl, i64 dblStride, const act_t* z, i64 zStride,
                                                 const act_t* __restrict__ wdtT, const float* __restrict__ dtBias,
                                                 const float* __restrict__ aLog2, const float* __restrict__ dSkip,
                                                 float* __restrict__ ssmState, i64 stateSeqStride, act_t* __restrict__ y,
                                                 int batch, int dInner, int dtRank, L2_PREFETCH_PARAMS) {
  const int dbl = dtRank + 2 * D_STATE;
  constexpr int LANES = ssm_step_lanes(), RUN = D_STATE / LANES, PREFETCH = dt_prefetch<LANES>();
  pdl_trigger();
  const int b0 = blockIdx.y * S, live = min(S, batch - b0), q = threadIdx.x % LANES;
  const int c = blockIdx.x * (SSM_STEP_THREADS / LANES) + threadIdx.x / LANES;
  const bool liveC = c < dInner;
  const int cc = liveC ? c : dInner - 1;  // every lane stays for the shuffles
  float wdt[PREFETCH], a2[RUN], h[S][RUN];
  load_dt_weights<LANES, PREFETCH>(wdt, wdtT, q, dtRank, dInner, cc);
  const auto hp = [&](int j) { return ssmState + (i64)(b0 + j) * stateSeqStride + (i64)cc * D_STATE + q * RUN; };
#pragma unroll
  for (int j = 0; j < S; ++j)
    if (j < live) load_run<RUN>(hp(j), h[j]);
  load_run<RUN>(aLog2 + (i64)cc * D_STATE + q * RUN, a2);
  const float bias = dtBias[cc], dSkipC = dSkip[cc];
  l2_prefetch(L2_PREFETCH_ARGS);  // the next layer's weights, after this block's own loads
  pdl_wait();  // x is conv_step's output, x_dbl the x_proj GEMM's
  float xv[S], zv[S];
#pragma unroll
  for (int j = 0; j < S; ++j)
    if (j < live) {
      xv[j] = ld_cg_act(x + (i64)(b0 + j) * dInner + cc);
      zv[j] = q == 0 ? ld_cg_act(z + (i64)(b0 + j) * zStride + cc) : 0.0f;
    }
  // x_dbl's rows staged in shared memory, every thread loading at once (read where used, each lane's ~50 loads of it
  // would wait in turn: they are volatile, for the programmatic launch), SSM_STAGE_LOADS of them before any is stored
  __shared__ float sxd[S][SSM_STEP_DBL_MAX];
  for (int i0 = threadIdx.x; i0 < live * dbl; i0 += SSM_STAGE_LOADS * SSM_STEP_THREADS) {
    float v[SSM_STAGE_LOADS];
#pragma unroll
    for (int u = 0; u < SSM_STAGE_LOADS; ++u) {
      const int i = i0 + u * SSM_STEP_THREADS, j = i / dbl;
      v[u] = i < live * dbl ? ld_cg_act(xDbl + (i64)(b0 + j) * dblStride + (i - j * dbl)) : 0.0f;
    }
#pragma unroll
    for (int u = 0; u < SSM_STAGE_LOADS; ++u) {
      const int i = i0 + u * SSM_STEP_THREADS, j = i / dbl;
      if (i < live * dbl) sxd[j][i - j * dbl] = v[u];
    }
  }
  __syncthreads();
  float acc[S];
  const auto xd = [&](int j, int i) { return sxd[j][i]; };
  ssm_lane_steps<LANES, RUN, PREFETCH, S>(xd, live, q, wdt, wdtT, dtRank, dInner, cc, bias, xv, h, a2, acc);
  if (!liveC) return;
#pragma unroll
  for (int j = 0; j < S; ++j)
    if (j < live) {
      store_run<RUN>(hp(j), h[j]);
      if (q == 0) act_store(y + (i64)(b0 + j) * dInner + c, (acc[j] + dSkipC * xv[j]) * silu_f(zv[j]));
    }
}

#define SSM_STEP_DT_ARGS                                                                                             \
  const act_t *x, const act_t *xDbl, i64 dblStride, const act_t *z, i64 zStride, const act_t *__restrict__ wdtT,   \
      const float *__restrict__ dtBias, const float *__restrict__ aLog2, const float *__restrict__ dSkip,            \
      float *__restrict__ ssmState, i64 stateSeqStride, act_t *__restrict__ y, int batch, int dInner, int dtRank,    \
      L2_PREFETCH_PARAMS
#define SSM_STEP_DT_CALL                                                                                             \
  x, xDbl, dblStride, z, zStride, wdtT, dtBias, aLog2, dSkip, ssmState, stateSeqStride, y, batch, dInner, dtRank,    \
      L2_PREFETCH_ARGS
extern "C" __global__ void __launch_bounds__(SSM_STEP_THREADS) ssm_step_dt(SSM_STEP_DT_ARGS) {
  ssm_step_dt_tile<1>(SSM_STEP_DT_CALL);
}
extern "C" __global__ void __launch_bounds__(SSM_STEP_THREADS) ssm_step_dt_s2(SSM_STEP_DT_ARGS) {
  ssm_step_dt_tile<2>(SSM_STEP_DT_CALL);
}
extern "C" __global__ void __launch_bounds__(SSM_STEP_THREADS) ssm_step_dt_s4(SSM_STEP_DT_ARGS) {
  ssm_step_dt_tile<SSM_STEP_SEQS>(SSM_STEP_DT_CALL);
}
