// Decoding: one new token per sequence, states updated in place.
// State layouts match LayerState: conv [D, D_CONV] oldest first, ssm [D, D_STATE]; stateSeqStride steps sequences.
#include "prelude.cuh"

// conv state ← shift left, append x (pre-conv); x_out = SiLU(Σ_k w[k]·state[k] + b).
extern "C" __global__ void conv_step(const act_t* __restrict__ x, i64 xStride, float* __restrict__ convState, i64 stateSeqStride,
                                     const float* __restrict__ weight, const float* __restrict__ bias,
                                     act_t* __restrict__ xOut, int batch, int dInner) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (i64)batch * dInner) return;
  const int b = (int)(i / dInner), c = (int)(i % dInner);
  float* st = convState + (i64)b * stateSeqStride + (i64)c * D_CONV;
  const float acc = conv_shift_in(st, act_load(x + (i64)b * xStride + c), weight + c * D_CONV, bias ? bias[c] : 0.0f);
  act_store(xOut + (i64)b * dInner + c, silu_f(acc));
}

#define SSM_STEP_THREADS 128

// Δ = softplus(dt_proj(dt) + bias) from x_proj's output row [dt | B | C], then h ← exp(Δ·A) ⊙ h + Δ·B·x and
// y = (C·h + D·x) ⊙ SiLU(z), so a step needs no dt_proj GEMM and no dt_softplus launch. Lanes of a channel split
// dt_proj's sum and the state (prelude.cuh ssm_lane_step); a warp's state loads and stores are contiguous (a thread a
// channel, 16 loads 64 bytes apart, took 26 µs for batch 64 of 130m on the H100, for 6 MB). Grid: (channel blocks,
// batch). (Four sequences a block, each lane's dt_proj weights loaded once for the four, was 10% slower at batch 64.)
extern "C" __global__ void __launch_bounds__(SSM_STEP_THREADS)
    ssm_step_dt(const act_t* __restrict__ x, const act_t* __restrict__ xDbl, i64 dblStride,
                const act_t* __restrict__ z, i64 zStride, const act_t* __restrict__ wdtT,
                const float* __restrict__ dtBias, const float* __restrict__ aLog2, const float* __restrict__ dSkip,
                float* __restrict__ ssmState, i64 stateSeqStride, act_t* __restrict__ y, int dInner, int dtRank) {
  constexpr int LANES = ssm_step_lanes(), RUN = D_STATE / LANES, PREFETCH = dt_prefetch<LANES>();
  const int b = blockIdx.y, q = threadIdx.x % LANES;
  const int c = blockIdx.x * (SSM_STEP_THREADS / LANES) + threadIdx.x / LANES;
  const bool live = c < dInner;
  const int cc = live ? c : dInner - 1;  // every lane stays for the shuffles
  float wdt[PREFETCH], a2[RUN], h[RUN];
  load_dt_weights<LANES, PREFETCH>(wdt, wdtT, q, dtRank, dInner, cc);
  float* hp = ssmState + (i64)b * stateSeqStride + (i64)cc * D_STATE + q * RUN;
  load_run<RUN>(hp, h);
  load_run<RUN>(aLog2 + (i64)cc * D_STATE + q * RUN, a2);
  const float xv = act_load(x + (i64)b * dInner + cc);
  const act_t* row = xDbl + (i64)b * dblStride;
  const auto xd = [&](int i) { return act_load(row + i); };
  const float acc = ssm_lane_step<LANES, RUN, PREFETCH>(xd, q, wdt, wdtT, dtRank, dInner, cc, dtBias[cc], xv, h, a2);
  if (!live) return;
  store_run<RUN>(hp, h);
  if (q == 0) act_store(y + (i64)b * dInner + c, (acc + dSkip[c] * xv) * silu_f(act_load(z + (i64)b * zStride + c)));
}
