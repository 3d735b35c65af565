// A decode step's x_proj and out_proj on the tensor cores, as programmatic dependents (decode.ts `mmaGemms`, bf16
// builds only). cuBLAS's GEMMs are launched as ordinary kernels: the launch before each one must finish before it
// starts, and at batch 64 of 130m the x_proj GEMM, with 245 KB of weights, took as long as the scan step's launch
// (~7 µs a layer by events, v20). Here a block's weights are in registers before it waits on the previous launch.
#ifndef DECISERVE_STEP_GEMM_CU
#define DECISERVE_STEP_GEMM_CU
#include "step-mma.cu"

#define GEMM_PARTS 8  // warps along k, summed in a fixed order
#define GEMM_STEPS 12 // 16-wide k steps a warp holds: k ≤ 8·12·16 = 1536 (130m's d_inner)
#define GEMM_SEQS 16  // sequences a block: two mma tiles of 8

// 8 bytes (p 8-byte aligned) that a programmatic prerequisite wrote (prelude.cuh ld_cg_f32 has why)
__device__ __forceinline__ void ld_cg_u32x2(const void* p, u32& a, u32& b) {
#if defined(__CUDA_ARCH__)
  asm volatile("ld.global.cg.v2.u32 {%0, %1}, [%2];" : "=r"(a), "=r"(b) : "l"(p));
#else
  const volatile u32* q = (const volatile u32*)p;
  a = q[0], b = q[1];
#endif
}

// Block (16 output rows, GEMM_SEQS sequences; grid ⌈n / 16⌉ × ⌈batch / 16⌉; k % 128 == 0, k ≤ 1536):
//   out[b, o] = Σ_i w[o, i]·in[b, i] (+ bias[o]), f32 (outF32) or rounded to act_t; in and out have rows of k and n.
// Warp p multiplies k's part p. Within a 16-wide step a lane takes 4 consecutive k of w's rows and of in's rows (the
// PTX layout's k 2t, 2t+1, 2t+8, 2t+9 renamed alike on both sides, which leaves the product unchanged), so each of
// its fragments is one 8-byte load.
extern "C" __global__ void __launch_bounds__(STEP_GEMV_THREADS)
    step_gemm_mma(const act_t* in, const act_t* __restrict__ w, const float* __restrict__ bias, void* out, int outF32,
                  int batch, int k, int n) {
#if ACT_BF16
  __shared__ float sAcc[GEMM_PARTS][16][GEMM_SEQS + 1];
  pdl_trigger();
  const int lane = threadIdx.x & 31, part = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int o0 = blockIdx.x * 16, b0 = blockIdx.y * GEMM_SEQS;
  const int kLen = k / GEMM_PARTS, steps = kLen / 16, kBase = part * kLen + 4 * t;
  u32 a[GEMM_STEPS][4];
  const bool r0 = o0 + g < n, r8 = o0 + g + 8 < n;
  const bf16_t* w0 = w + (i64)(o0 + g) * k + kBase;
  const bf16_t* w8 = w0 + 8 * (i64)k;
#pragma unroll
  for (int s = 0; s < GEMM_STEPS; ++s)
    if (s < steps) {
      const u32* p0 = (const u32*)(w0 + 16 * s);
      const u32* p8 = (const u32*)(w8 + 16 * s);
      a[s][0] = r0 ? p0[0] : 0u, a[s][2] = r0 ? p0[1] : 0u;
      a[s][1] = r8 ? p8[0] : 0u, a[s][3] = r8 ? p8[1] : 0u;
    }
  pdl_wait();  // in is the previous launch's output
  u32 bv[2][GEMM_STEPS][2];
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
    const int b = b0 + 8 * nt + g;
    // past the batch: the last sequence's row again, whose sums are never stored
    const bf16_t* p = in + (i64)min(b, batch - 1) * k + kBase;
#pragma unroll
    for (int s = 0; s < GEMM_STEPS; ++s)
      if (s < steps) ld_cg_u32x2(p + 16 * s, bv[nt][s][0], bv[nt][s][1]);
  }
#pragma unroll
  for (int nt = 0; nt < 2; ++nt) {
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int s = 0; s < GEMM_STEPS; ++s)
      if (s < steps) mma_bf16_16816(d, a[s], bv[nt][s]);
    const int c = 8 * nt + 2 * t;
    sAcc[part][g][c] = d[0], sAcc[part][g][c + 1] = d[1];
    sAcc[part][g + 8][c] = d[2], sAcc[part][g + 8][c + 1] = d[3];
  }
  __syncthreads();
  // a thread an output: row r (consecutive threads, consecutive o), sequence j
  const int r = threadIdx.x % 16, j = threadIdx.x / 16, o = o0 + r, b = b0 + j;
  if (o >= n || b >= batch) return;
  float sum = 0.0f;
#pragma unroll
  for (int p = 0; p < GEMM_PARTS; ++p) sum += sAcc[p][r][j];
  if (bias) sum += bias[o];
  if (outF32)
    ((float*)out)[(i64)b * n + o] = sum;
  else
    act_store((act_t*)out + (i64)b * n + o, sum);
#endif
}
#endif  // DECISERVE_STEP_GEMM_CU
