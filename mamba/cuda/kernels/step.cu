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
#define SSM_STEP_SEQS 4  // sequences a block of ssm_step_dt: its lanes load their dt_proj weights once for all four

// Δ = softplus(dt_proj(dt) + bias) from x_proj's output row [dt | B | C], then h ← exp(Δ·A) ⊙ h + Δ·B·x and
// y = (C·h + D·x) ⊙ SiLU(z), so a step needs no dt_proj GEMM and no dt_softplus launch. Lanes of a channel split
// dt_proj's sum and the state (prelude.cuh ssm_lane_step); a warp's state loads and stores are contiguous (a thread a
// channel, 16 loads 64 bytes apart, took 26 µs for batch 64 of 130m on the H100, for 6 MB). Every load of a block's
// sequences is issued before the first is used. Grid: (channel blocks, groups of SSM_STEP_SEQS sequences).
extern "C" __global__ void __launch_bounds__(SSM_STEP_THREADS)
    ssm_step_dt(const act_t* __restrict__ x, const act_t* __restrict__ xDbl, i64 dblStride,
                const act_t* __restrict__ z, i64 zStride, const act_t* __restrict__ wdtT,
                const float* __restrict__ dtBias, const float* __restrict__ aLog2, const float* __restrict__ dSkip,
                float* __restrict__ ssmState, i64 stateSeqStride, act_t* __restrict__ y, int batch, int dInner,
                int dtRank) {
  constexpr int LANES = ssm_step_lanes(), RUN = D_STATE / LANES, PREFETCH = dt_prefetch<LANES>();
  const int q = threadIdx.x % LANES, c = blockIdx.x * (SSM_STEP_THREADS / LANES) + threadIdx.x / LANES;
  const int b0 = blockIdx.y * SSM_STEP_SEQS, nb = min(SSM_STEP_SEQS, batch - b0);
  const bool live = c < dInner;
  const int cc = live ? c : dInner - 1;  // every lane stays for the shuffles
  float wdt[PREFETCH], a2[RUN], h[SSM_STEP_SEQS][RUN], xv[SSM_STEP_SEQS], acc[SSM_STEP_SEQS];
  load_dt_weights<LANES, PREFETCH>(wdt, wdtT, q, dtRank, dInner, cc);
  load_run<RUN>(aLog2 + (i64)cc * D_STATE + q * RUN, a2);
  const auto state = [&](int s) { return ssmState + (i64)(b0 + s) * stateSeqStride + (i64)cc * D_STATE + q * RUN; };
#pragma unroll
  for (int s = 0; s < SSM_STEP_SEQS; ++s)
    if (s < nb) {
      load_run<RUN>(state(s), h[s]);
      xv[s] = act_load(x + (i64)(b0 + s) * dInner + cc);
    }
  const float bias = dtBias[cc];
#pragma unroll
  for (int s = 0; s < SSM_STEP_SEQS; ++s)
    if (s < nb) {
      const act_t* row = xDbl + (i64)(b0 + s) * dblStride;
      const auto xd = [&](int i) { return act_load(row + i); };
      acc[s] = ssm_lane_step<LANES, RUN, PREFETCH>(xd, q, wdt, wdtT, dtRank, dInner, cc, bias, xv[s], h[s], a2);
    }
  if (!live) return;
#pragma unroll
  for (int s = 0; s < SSM_STEP_SEQS; ++s)
    if (s < nb) {
      store_run<RUN>(state(s), h[s]);
      const i64 b = b0 + s;
      if (q == 0) act_store(y + b * dInner + c, (acc[s] + dSkip[c] * xv[s]) * silu_f(act_load(z + b * zStride + c)));
    }
}
