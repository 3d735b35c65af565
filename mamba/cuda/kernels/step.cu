// Decoding: one new token per sequence, states updated in place. Thread per (sequence, channel).
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

// h ← exp(Δ·A) ⊙ h + Δ·B·x;  y = (C·h + D·x) ⊙ SiLU(z).
extern "C" __global__ void ssm_step(const act_t* __restrict__ x, const float* __restrict__ delta, const act_t* __restrict__ z,
                                    i64 zStride, const act_t* __restrict__ bMat, const act_t* __restrict__ cMat, i64 bcStride,
                                    const float* __restrict__ aLog2, const float* __restrict__ dSkip,
                                    float* __restrict__ ssmState, i64 stateSeqStride, act_t* __restrict__ y, int batch, int dInner) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (i64)batch * dInner) return;
  const int b = (int)(i / dInner), c = (int)(i % dInner);
  const float dt = delta[(i64)b * dInner + c];
  const float xv = act_load(x + (i64)b * dInner + c);
  const float dx = dt * xv;
  float* h = ssmState + (i64)b * stateSeqStride + (i64)c * D_STATE;
  const act_t* bRow = bMat + (i64)b * bcStride;
  const act_t* cRow = cMat + (i64)b * bcStride;
  const float acc = ssm_update(h, dt, dx, aLog2 + c * D_STATE, [&](int n, float* bn, float* cn) {
    *bn = act_load(bRow + n);
    *cn = act_load(cRow + n);
  });
  act_store(y + (i64)b * dInner + c, (acc + dSkip[c] * xv) * silu_f(act_load(z + (i64)b * zStride + c)));
}
