// Weight preparation and small epilogues.
#include "prelude.cuh"

// f32 → bf16 (round to nearest even), for the bf16 copies of the GEMM weights.
extern "C" __global__ void convert_f32_to_bf16(const float* __restrict__ src, bf16_t* __restrict__ dst, i64 n) {
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (i64)gridDim.x * blockDim.x) dst[i] = f32_to_bf16(src[i]);
}

// out[row, 0:width] += bias (in_proj / out_proj biases of checkpoints with use_bias; none of the public ones).
extern "C" __global__ void add_bias_act(act_t* __restrict__ out, i64 stride, const float* __restrict__ bias, int rows, int width) {
  const int row = blockIdx.x;
  if (row >= rows) return;
  act_t* o = out + (i64)row * stride;
  for (int i = threadIdx.x; i < width; i += blockDim.x) act_store(o + i, act_load(o + i) + bias[i]);
}
extern "C" __global__ void add_bias_f32(float* __restrict__ out, i64 stride, const float* __restrict__ bias, int rows, int width) {
  const int row = blockIdx.x;
  if (row >= rows) return;
  float* o = out + (i64)row * stride;
  for (int i = threadIdx.x; i < width; i += blockDim.x) o[i] += bias[i];
}
