// Residual stream and RMSNorm, one block per row: x / sqrt(mean(x²) + eps) · w.
#include "prelude.cuh"

// Block N's entry: residual = hidden + residual, normed = RMSNorm(residual). The first block (ids non-null) starts the
// residual stream from the embedding, residual = table[ids[row]], so the gather needs no launch of its own (ids are
// checked on the host before upload). hidden null: the previous block's out_proj already added into the residual
// (engine option residualInOutProj), so the residual is only read. residual is kept in f32 (residual_in_fp32); normed
// feeds in_proj, so it is an activation (f32 or bf16).
extern "C" __global__ void add_rmsnorm(const float* __restrict__ hidden, float* __restrict__ residual, act_t* __restrict__ normed,
                                       const float* __restrict__ weight, int rows, int dim, float eps,
                                       const int* __restrict__ ids, const float* __restrict__ table) {
  const int row = blockIdx.x;
  if (row >= rows) return;
  const bool first = ids != nullptr;
  const float* h = first ? table + (i64)ids[row] * dim : hidden + (i64)row * dim;
  float* r = residual + (i64)row * dim;
  float sumSq = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = first ? h[i] : hidden ? h[i] + r[i] : r[i];
    if (first || hidden) r[i] = v;
    sumSq += v * v;
  }
  const float scale = rsqrtf(block_sum_f(sumSq) / (float)dim + eps);
  act_t* out = normed + (i64)row * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) act_store(out + i, r[i] * scale * weight[i]);
}

// After the last block: out[j] = RMSNorm_f(hidden[rowIdx[j]] + residual[rowIdx[j]]) (hidden null: the residual alone),
// only for the rows whose logits are needed (the lm_head runs on these rows alone).
extern "C" __global__ void final_rmsnorm_rows(const float* __restrict__ hidden, const float* __restrict__ residual,
                                              const int* __restrict__ rowIdx, act_t* __restrict__ out,
                                              const float* __restrict__ weight, int nOut, int dim, float eps) {
  const int j = blockIdx.x;
  if (j >= nOut) return;
  const i64 row = rowIdx[j];
  const float* h = hidden ? hidden + row * dim : nullptr;
  const float* r = residual + row * dim;
  float sumSq = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    const float v = h ? h[i] + r[i] : r[i];
    sumSq += v * v;
  }
  const float scale = rsqrtf(block_sum_f(sumSq) / (float)dim + eps);
  act_t* o = out + (i64)j * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) act_store(o + i, (h ? h[i] + r[i] : r[i]) * scale * weight[i]);
}
