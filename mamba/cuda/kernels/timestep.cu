// Δ = softplus(dt_proj(dt) + bias), in place on the f32 output of the dt_proj GEMM ([rows, dInner], dense).
// Blocks stride over rows and threads over channels, so no 64-bit modulo is needed to find a channel.
#include "prelude.cuh"

extern "C" __global__ void dt_softplus(float* __restrict__ delta, const float* __restrict__ bias, int rows, int dInner) {
  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    float* d = delta + (i64)row * dInner;
    for (int c = threadIdx.x; c < dInner; c += blockDim.x) d[c] = softplus_f(d[c] + bias[c]);
  }
}
