// A decode step in four launches a layer instead of eight (decode.ts, mixer.ts 'step' with fused kernels): at one
// token per sequence every launch is a few microseconds of latency and little work, so the step's time is its number
// of launches. The math and the roundings are step.cu's and the prefill's (normed, x, x_dbl and y rounded to act_t).
//   step_norm_in_proj: residual += hidden, RMSNorm, in_proj   (small batches; larger ones use add_rmsnorm + cuBLAS)
//   step_conv_x_proj:  conv_step + SiLU, then x_proj's partial sums over this block's channel slice
//   step_dt_ssm:       x_proj's sums, dt_proj + bias → softplus → Δ, ssm_step, D skip, z gate → y
//   step_out_proj:     out_proj (+ bias)                         (small batches; larger ones use cuBLAS)
// x_proj is split over channel slices whose partial sums the next kernel adds up, in a
// fixed order (no atomics: a step gives the same tokens every run).
#include "prelude.cuh"

#define STEP_GEMV_BATCH 8     // most sequences the GEMV kernels take (decode.ts uses cuBLAS above)
#define STEP_GEMV_ROWS 2      // output rows a warp of a GEMV kernel
#define STEP_GEMV_THREADS 256
#define STEP_SLICE 128        // channels a block of step_conv_x_proj
#define STEP_SLICE_BATCH 8    // sequences a block of step_conv_x_proj
#define STEP_DBL_MAX 512      // dtRank + 2·dState at most (decode.ts checks)
#define STEP_SMEM_FLOATS 8192 // staged GEMV inputs: k ≤ 8192 (decode.ts checks)
#define STEP_DT_BATCH 4       // sequences a block of step_dt_ssm

// what rounding to the activation type does to v (the value a GEMM reading an act_t buffer would see)
__device__ __forceinline__ float act_round(float v) {
#if ACT_BF16
  return bf16_to_f32(f32_to_bf16(v));
#else
  return v;
#endif
}

// elements i and i+1 of an act_t row (i even, the row 4-byte aligned: k even)
__device__ __forceinline__ void act_load2(const act_t* p, float& a, float& b) {
#if ACT_BF16
  const u32 w = *(const u32*)p;
  a = bf16_to_f32((bf16_t)(w & 0xffffu));
  b = bf16_to_f32((bf16_t)(w >> 16));
#else
  a = p[0];
  b = p[1];
#endif
}

// The GEMVs of step_norm_in_proj and step_out_proj: out(b, o) = Σ_i w[o, i]·in(b, i) (+ bias[o]) for every b < batch.
// The block stages up to 8 input rows (at most STEP_SMEM_FLOATS values) in shared memory with `stage`, then each
// warp takes STEP_GEMV_ROWS output rows, its lanes two k elements a load. Weight loads are independent of each other
// and of the staged inputs, so they overlap; a first version read the inputs from global memory inside the loop and
// waited on every load in turn (1.5x slower than cuBLAS at batch 1, 3x at batch 8, on the H100).
template <typename Stage, typename Store>
__device__ __forceinline__ void block_gemv(const act_t* __restrict__ w, int k, int n, int batch, Stage stage,
                                           Store store) {
  __shared__ float sIn[STEP_SMEM_FLOATS];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int o0 = (blockIdx.x * (STEP_GEMV_THREADS / 32) + warp) * STEP_GEMV_ROWS;
  const int tile = min(STEP_GEMV_BATCH, STEP_SMEM_FLOATS / k);
  for (int b0 = 0; b0 < batch; b0 += tile) {
    const int tb = min(tile, batch - b0);
    __syncthreads();  // the previous tile's inputs are no longer read
    stage(sIn, b0, tb);
    __syncthreads();
    if (o0 >= n) continue;
    float acc[STEP_GEMV_ROWS][STEP_GEMV_BATCH];
#pragma unroll
    for (int r = 0; r < STEP_GEMV_ROWS; ++r)
#pragma unroll
      for (int j = 0; j < STEP_GEMV_BATCH; ++j) acc[r][j] = 0.0f;
#pragma unroll 4
    for (int i = 2 * lane; i < k; i += 64) {
      float wv[STEP_GEMV_ROWS][2];
#pragma unroll
      for (int r = 0; r < STEP_GEMV_ROWS; ++r)  // a missing last row repeats row n−1; its sums are never stored
        act_load2(w + (i64)min(o0 + r, n - 1) * k + i, wv[r][0], wv[r][1]);
#pragma unroll
      for (int j = 0; j < STEP_GEMV_BATCH; ++j) {
        if (j < tb) {
          const float v0 = sIn[j * k + i], v1 = sIn[j * k + i + 1];
#pragma unroll
          for (int r = 0; r < STEP_GEMV_ROWS; ++r) acc[r][j] += wv[r][0] * v0 + wv[r][1] * v1;
        }
      }
    }
#pragma unroll
    for (int j = 0; j < STEP_GEMV_BATCH; ++j) {
      if (j >= tb) break;
#pragma unroll
      for (int r = 0; r < STEP_GEMV_ROWS; ++r) {
        const float t = warp_sum_f(acc[r][j]);
        if (lane == 0 && o0 + r < n) store(b0 + j, o0 + r, t);
      }
    }
  }
}

// residual_out = hidden (+ residual_in); xz = in_proj(RMSNorm(residual_out)·normW) (+ bias), for batch ≤ 8 and k even.
// Every block forms the normed rows it needs (a warp a row); block 0 also writes the new residual, into the other
// buffer of a pair, since every block reads the old one.
extern "C" __global__ void step_norm_in_proj(const float* __restrict__ hidden, const float* __restrict__ residualIn,
                                             float* __restrict__ residualOut, int first, const float* __restrict__ normW,
                                             float eps, const act_t* __restrict__ w, const float* __restrict__ bias,
                                             act_t* __restrict__ out, int batch, int k, int n) {
  // the whole block forms each row (a warp a row left 7 of 8 warps idle at batch 1)
  const auto stage = [&](float* sIn, int b0, int tb) {
    for (int j = 0; j < tb; ++j) {
      const i64 row = (i64)(b0 + j) * k;
      float* s = sIn + j * k;
      float ss = 0.0f;
      for (int i = threadIdx.x; i < k; i += blockDim.x) {
        const float v = first ? hidden[row + i] : hidden[row + i] + residualIn[row + i];
        if (blockIdx.x == 0) residualOut[row + i] = v;
        s[i] = v;
        ss += v * v;
      }
      const float scale = rsqrtf(block_sum_f(ss) / (float)k + eps);
      for (int i = threadIdx.x; i < k; i += blockDim.x) s[i] = act_round(s[i] * scale * normW[i]);
    }
  };
  const auto store = [&](int b, int o, float t) { act_store(out + (i64)b * n + o, t + (bias ? bias[o] : 0.0f)); };
  block_gemv(w, k, n, batch, stage, store);
}

// out = y · wᵀ (+ bias), f32 [batch, n] (the next block's hidden), for batch ≤ 8 and k even.
extern "C" __global__ void step_out_proj(const act_t* __restrict__ y, const act_t* __restrict__ w,
                                         const float* __restrict__ bias, float* __restrict__ out, int batch, int k, int n) {
  const auto stage = [&](float* sIn, int b0, int tb) {
    for (int t = threadIdx.x; t < tb * k; t += blockDim.x) sIn[t] = act_load(y + (i64)b0 * k + t);
  };
  const auto store = [&](int b, int o, float t) { out[(i64)b * n + o] = t + (bias ? bias[o] : 0.0f); };
  block_gemv(w, k, n, batch, stage, store);
}

// Block (slice s, sequences b0..b0+8): conv_step on channels [s·128, s·128 + 128) (conv state shifted in place,
// x = SiLU(conv) stored), then partial[s, b, j] = Σ over the slice of x_proj[j, c]·x[b, c] for every j < dbl.
extern "C" __global__ void step_conv_x_proj(const act_t* __restrict__ xz, i64 xzStride, float* __restrict__ convState,
                                            i64 stateSeqStride, const float* __restrict__ convW,
                                            const float* __restrict__ convB, act_t* __restrict__ xOut,
                                            const act_t* __restrict__ wx, float* __restrict__ partial, int batch,
                                            int dInner, int dbl) {
  __shared__ float sx[STEP_SLICE_BATCH][STEP_SLICE];
  const int c0 = blockIdx.x * STEP_SLICE, b0 = blockIdx.y * STEP_SLICE_BATCH;
  for (int i = threadIdx.x; i < STEP_SLICE_BATCH * STEP_SLICE; i += blockDim.x) {
    const int bl = i / STEP_SLICE, c = c0 + i % STEP_SLICE, b = b0 + bl;
    float xv = 0.0f;
    if (b < batch && c < dInner) {
      float* st = convState + (i64)b * stateSeqStride + (i64)c * D_CONV;
      const float x = act_load(xz + (i64)b * xzStride + c);
      const float acc = conv_shift_in(st, x, convW + c * D_CONV, convB ? convB[c] : 0.0f);
      xv = act_round(silu_f(acc));
      act_store(xOut + (i64)b * dInner + c, xv);
    }
    sx[bl][i % STEP_SLICE] = xv;
  }
  __syncthreads();
  // a warp a row of x_proj; only the block's own sequences are summed (all eight cost 8x the shuffles at batch 1)
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const int tb = min(STEP_SLICE_BATCH, batch - b0);
  for (int j = warp; j < dbl; j += warps) {
    float acc[STEP_SLICE_BATCH];
#pragma unroll
    for (int b = 0; b < STEP_SLICE_BATCH; ++b) acc[b] = 0.0f;
#pragma unroll
    for (int cl = lane; cl < STEP_SLICE; cl += 32) {
      const int c = c0 + cl;
      const float wv = c < dInner ? act_load(wx + (i64)j * dInner + c) : 0.0f;
#pragma unroll
      for (int b = 0; b < STEP_SLICE_BATCH; ++b)
        if (b < tb) acc[b] += wv * sx[b][cl];
    }
#pragma unroll
    for (int b = 0; b < STEP_SLICE_BATCH; ++b) {
      if (b >= tb) break;
      const float t = warp_sum_f(acc[b]);
      if (lane == 0) partial[((i64)blockIdx.x * batch + b0 + b) * dbl + j] = t;
    }
  }
}

// Block (STEP_DT_THREADS channels: 64 spreads a 1,536-channel model over 24 SMs, not 6; sequences b0..b0+4):
// x_dbl[b] = Σ_s partial[s, b] (rounded as the x_proj GEMM's act_t output), then per channel and sequence
// Δ = softplus(dt_proj(dt) + bias) and the ssm_step update and output.
// dt_proj's weight is read transposed ([dtRank, dInner]: a warp reads 32 channels of a row at once), once for the
// block's sequences.
extern "C" __global__ void step_dt_ssm(const float* __restrict__ partial, int slices, const act_t* __restrict__ x,
                                       const act_t* __restrict__ z, i64 zStride, const act_t* __restrict__ wdtT,
                                       const float* __restrict__ dtBias, const float* __restrict__ aLog2,
                                       const float* __restrict__ dSkip, float* __restrict__ ssmState,
                                       i64 stateSeqStride, act_t* __restrict__ y, int batch, int dInner, int dtRank) {
  __shared__ float sxd[STEP_DT_BATCH][STEP_DBL_MAX];
  const int b0 = blockIdx.y * STEP_DT_BATCH, tb = min(STEP_DT_BATCH, batch - b0);
  const int dbl = dtRank + 2 * D_STATE;
  for (int t = threadIdx.x; t < tb * dbl; t += blockDim.x) {
    const int j = t / dbl, col = t % dbl;
    float s = 0.0f;
    for (int sl = 0; sl < slices; ++sl) s += partial[((i64)sl * batch + b0 + j) * dbl + col];
    sxd[j][col] = act_round(s);
  }
  __syncthreads();
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= dInner) return;
  float dt[STEP_DT_BATCH];
#pragma unroll
  for (int j = 0; j < STEP_DT_BATCH; ++j) dt[j] = 0.0f;
#pragma unroll 8
  for (int r = 0; r < dtRank; ++r) {
    const float w = act_load(wdtT + (i64)r * dInner + c);
#pragma unroll
    for (int j = 0; j < STEP_DT_BATCH; ++j) dt[j] += w * sxd[j][r];
  }
#pragma unroll
  for (int j = 0; j < STEP_DT_BATCH; ++j) {
    if (j >= tb) break;
    const int b = b0 + j;
    const float delta = softplus_f(dt[j] + dtBias[c]);
    const float xv = act_load(x + (i64)b * dInner + c);
    const float dx = delta * xv;
    float* h = ssmState + (i64)b * stateSeqStride + (i64)c * D_STATE;
    const float* bc = sxd[j] + dtRank;
    const float acc = ssm_update(h, delta, dx, aLog2 + c * D_STATE, [&](int n, float* bn, float* cn) {
      *bn = bc[n];
      *cn = bc[D_STATE + n];
    });
    act_store(y + (i64)b * dInner + c, (acc + dSkip[c] * xv) * silu_f(act_load(z + (i64)b * zStride + c)));
  }
}
