// Δ = softplus(dt_proj(dt) + bias), in place on the f32 output of the dt_proj GEMM ([rows, dInner], dense).
#include "prelude.cuh"

extern "C" __global__ void dt_softplus(float* __restrict__ delta, const float* __restrict__ bias, i64 n, int dInner) {
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) {
    delta[i] = softplus_f(delta[i] + bias[i % dInner]);
  }
}
