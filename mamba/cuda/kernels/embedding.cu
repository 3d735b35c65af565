// Embedding gather: hidden[row] = table[ids[row]] (f32). Ids are checked on the host before upload.
#include "prelude.cuh"

extern "C" __global__ void embed_rows(const int* __restrict__ ids, const float* __restrict__ table, float* __restrict__ hidden,
                                      int rows, int dModel) {
  const int row = blockIdx.x;
  if (row >= rows) return;
  const float* src = table + (i64)ids[row] * dModel;
  float* dst = hidden + (i64)row * dModel;
  for (int i = threadIdx.x; i < dModel; i += blockDim.x) dst[i] = src[i];
}
