// After the lm_head GEMM: log-softmax (for scoring) and argmax (greedy decoding without copying the logits back).
#include "prelude.cuh"

// In place, one block per row: logits − max − log Σ exp(logits − max).
extern "C" __global__ void log_softmax_rows(float* __restrict__ logits, int rows, int vocab) {
  const int row = blockIdx.x;
  if (row >= rows) return;
  float* v = logits + (i64)row * vocab;
  float m = -3.402823466e38f;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) m = fmaxf(m, v[i]);
  m = block_max_f(m);
  float sum = 0.0f;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) sum += expf(v[i] - m);
  const float logZ = m + logf(block_sum_f(sum));
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) v[i] -= logZ;
}

// argmax per row, ties to the lower id (as mamba/sampling.ts argmax); NaN never wins.
extern "C" __global__ void argmax_rows(const float* __restrict__ logits, int rows, int vocab, int* __restrict__ out) {
  __shared__ float bestV[32];
  __shared__ int bestI[32];
  const int row = blockIdx.x;
  if (row >= rows) return;
  const float* v = logits + (i64)row * vocab;
  float bv = -3.402823466e38f;
  int bi = 0x7fffffff;
  // ARGMAX_LOADS loads a thread before it compares any: one load at a time waited out ~50 L2 round trips a row (15 µs
  // of a 130m decode step on the H100)
  constexpr int ARGMAX_LOADS = 16;
  for (int i0 = threadIdx.x; i0 < vocab; i0 += blockDim.x * ARGMAX_LOADS) {
    float x[ARGMAX_LOADS];
#pragma unroll
    for (int m = 0; m < ARGMAX_LOADS; ++m) {
      const int i = i0 + m * (int)blockDim.x;
      x[m] = i < vocab ? v[i] : -3.402823466e38f;
    }
#pragma unroll
    for (int m = 0; m < ARGMAX_LOADS; ++m) {
      const int i = i0 + m * (int)blockDim.x;
      if (i < vocab && (x[m] > bv || (x[m] == bv && i < bi))) { bv = x[m]; bi = i; }
    }
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (ov > bv || (ov == bv && oi < bi)) { bv = ov; bi = oi; }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  if (lane == 0) { bestV[warp] = bv; bestI[warp] = bi; }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < warps; ++w) {
      if (bestV[w] > bv || (bestV[w] == bv && bestI[w] < bi)) { bv = bestV[w]; bi = bestI[w]; }
    }
    out[row] = bi == 0x7fffffff ? 0 : bi;
  }
}
