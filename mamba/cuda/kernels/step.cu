// Decoding: one new token per sequence, states updated in place.
// State layouts match LayerState: conv [D, D_CONV] oldest first, ssm [D, D_STATE]; stateSeqStride steps sequences.
#include "prelude.cuh"

// conv state ← shift left, append x (pre-conv); x_out = SiLU(Σ_k w[k]·state[k] + b); x_proj then runs as a cuBLAS
// GEMM. (conv + SiLU and x_proj in one launch, partial sums over 256-channel blocks added by the last block to arrive,
// was slower at every batch on the H100: 13 µs a layer at batch 1 and 20 at 64 against 4 + 7 and 5.6 + 7.3 for these
// two launches, cuda-device-check-decode-v10-h100.json: six blocks at 130m left the GPU idle.) As a programmatic
// dependent it reads its state and weights before waiting on in_proj's output.
extern "C" __global__ void conv_step(const act_t* x, i64 xStride, float* __restrict__ convState, i64 stateSeqStride,
                                     const float* __restrict__ weight, const float* __restrict__ bias,
                                     act_t* __restrict__ xOut, int batch, int dInner) {
  pdl_trigger();
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (i64)batch * dInner) return;
  const int b = (int)(i / dInner), c = (int)(i % dInner);
  float* st = convState + (i64)b * stateSeqStride + (i64)c * D_CONV;
  ConvTaps taps = conv_taps(st, weight + c * D_CONV, bias ? bias[c] : 0.0f);
  pdl_wait();  // x (pre-conv) is in_proj's output
  act_store(xOut + (i64)b * dInner + c, silu_f(conv_shift(st, taps, ld_cg_act(x + (i64)b * xStride + c))));
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
  pdl_wait();  // x is conv_step's output, x_dbl the x_proj GEMM's
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
