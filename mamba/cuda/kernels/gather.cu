// Row gathers for DeciMamba's sub-sampling (x, Δ, z, B/C, the residual and the original positions):
// dst[j] = src[srcRow[j]], row by row, type-agnostic (32-bit or 16-bit words; strides and widths in words).
#include "prelude.cuh"

extern "C" __global__ void gather_rows_u32(const u32* __restrict__ src, i64 srcStride, u32* __restrict__ dst, i64 dstStride,
                                           int width, const int* __restrict__ srcRow, int nRows) {
  const int j = blockIdx.x;
  if (j >= nRows) return;
  const u32* from = src + (i64)srcRow[j] * srcStride;
  u32* to = dst + (i64)j * dstStride;
  for (int w = threadIdx.x; w < width; w += blockDim.x) to[w] = from[w];
}

extern "C" __global__ void gather_rows_u16(const unsigned short* __restrict__ src, i64 srcStride, unsigned short* __restrict__ dst,
                                           i64 dstStride, int width, const int* __restrict__ srcRow, int nRows) {
  const int j = blockIdx.x;
  if (j >= nRows) return;
  const unsigned short* from = src + (i64)srcRow[j] * srcStride;
  unsigned short* to = dst + (i64)j * dstStride;
  for (int w = threadIdx.x; w < width; w += blockDim.x) to[w] = from[w];
}
