// A decode step's in_proj on the tensor cores, for batches past the fused step's GEMVs (decode.ts `mmaStep`, bf16
// builds only: the host never launches it on f32). With the fused step's epilogue (conv + SiLU on x's rows, x_proj's
// partial sums for step_dt_ssm), one launch replaces the unfused step's in_proj GEMM, conv_step and x_proj GEMM, so
// a layer is add_rmsnorm, this, step_dt_ssm and the out_proj GEMM: four launches instead of six. At batch 64 the six
// spend most of their ~30 µs a layer (H100, v15) in launch latency, and a GEMV-per-sequence design (step-fused.cu)
// grows with the batch (130m batch 8: 19 µs for step_in_proj_conv alone), so the product runs as mma.sync tiles.
#ifndef DECISERVE_STEP_MMA_CU
#define DECISERVE_STEP_MMA_CU
#include "step-fused.cu"

#define MMA_K_PARTS 4   // warps along k (8 warps: 2 row tiles of 16 × 4 parts of k), summed in a fixed order
#define MMA_K_STEPS 16  // 16-wide k steps of in_proj's weights a warp holds in registers: d_model ≤ 4·16·16 = 1024
#define MMA_SEQ_TILE 16 // sequences staged in shared memory at once
#define MMA_ROWS 32     // in_proj rows a block: step_in_proj_conv's blocks, so x_proj's partial sums line up
static_assert(MMA_ROWS == STEP_IN_ROWS * (STEP_GEMV_THREADS / 32) && MMA_ROWS == 2 * 16,
              "step_dt_ssm adds the fused step's x-row blocks' sums; a block is two 16-row mma tiles");

// D += A·B for one warp, m16n8k16, bf16 inputs and f32 sums, in the PTX fragment layout: with g = lane / 4 and
// t = lane % 4, a[0..3] hold A's (g, 2t..2t+1), (g+8, 2t..), (g, 2t+8..), (g+8, 2t+8..); b[0..1] hold B's
// (k 2t..2t+1, n g) and (k 2t+8.., n g); d[0..3] are D's (g, 2t), (g, 2t+1), (g+8, 2t), (g+8, 2t+1); the lower
// index of a pair sits in the low 16 bits.
__device__ __forceinline__ void mma_bf16_16816(float d[4], const u32 a[4], const u32 b[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
  // the CPU emulator (and older GPUs): gather the warp's fragments by shuffles, then each lane sums its four outputs
  float A[16][16], B[16][8];
  const auto lo = [](u32 v) { return __uint_as_float(v << 16); };
  const auto hi = [](u32 v) { return __uint_as_float(v & 0xffff0000u); };
  for (int src = 0; src < 32; ++src) {
    const int g = src >> 2, t = src & 3;
    u32 av[4], bv[2];
    for (int i = 0; i < 4; ++i) av[i] = __shfl_sync(0xffffffffu, a[i], src);
    for (int i = 0; i < 2; ++i) bv[i] = __shfl_sync(0xffffffffu, b[i], src);
    A[g][2 * t] = lo(av[0]), A[g][2 * t + 1] = hi(av[0]);
    A[g + 8][2 * t] = lo(av[1]), A[g + 8][2 * t + 1] = hi(av[1]);
    A[g][2 * t + 8] = lo(av[2]), A[g][2 * t + 9] = hi(av[2]);
    A[g + 8][2 * t + 8] = lo(av[3]), A[g + 8][2 * t + 9] = hi(av[3]);
    B[2 * t][g] = lo(bv[0]), B[2 * t + 1][g] = hi(bv[0]);
    B[2 * t + 8][g] = lo(bv[1]), B[2 * t + 9][g] = hi(bv[1]);
  }
  const int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  for (int i = 0; i < 4; ++i) {
    const int row = g + (i >= 2 ? 8 : 0), col = 2 * t + (i & 1);
    float s = 0.0f;
    for (int k = 0; k < 16; ++k) s += A[row][k] * B[k][col];
    d[i] += s;
  }
#endif
}

// Block of MMA_ROWS in_proj rows and seqSpan sequences (grid: 2·dInner / 32, x's rows first, by ⌈batch / seqSpan⌉;
// dInner % 32 == 0, k % 64 == 0, k ≤ 1024):
//   xz = in_proj(normed) (+ bias), z's rows stored in xz; on x's rows conv + SiLU → x, then, when partial is not
//   null, partial[blk, b, j] = Σ over the block's channels of x_proj[j, c]·x[b, c] (step_dt_ssm adds them up; null:
//   the x_proj GEMM reads x).
// Warp w takes rows 16·(w % 2).. of the block and k's part w / 2; its A fragments (in_proj's weights) are loaded
// into registers before pdl_wait, so they overlap the previous launch. normed is staged MMA_SEQ_TILE rows at a time,
// each row padded by 8 elements so that the B fragments' 32-bit reads fall in distinct banks; the next tile's rows
// and conv windows are loaded into registers while this tile is multiplied, so a tile waits on L2 once. A span
// shorter than the batch spreads its tiles over more blocks (96 blocks of 130m at batch 64 walked four tiles in turn
// on 132 SMs), each block loading the same weights (from L2 after the first).
#define MMA_STAGE_LOADS (MMA_SEQ_TILE * 16 * MMA_K_STEPS * MMA_K_PARTS / 8 / STEP_GEMV_THREADS) // 16-byte loads a thread
#define MMA_ITEMS (MMA_ROWS * MMA_SEQ_TILE / STEP_GEMV_THREADS) // (row, sequence) outputs a thread per tile
extern "C" __global__ void __launch_bounds__(STEP_GEMV_THREADS)
    step_in_proj_conv_mma(const act_t* normed, const act_t* __restrict__ w, const float* __restrict__ bias,
                          act_t* __restrict__ xz, float* __restrict__ convState, i64 stateSeqStride,
                          const float* __restrict__ convW, const float* __restrict__ convB, act_t* __restrict__ xOut,
                          const act_t* __restrict__ wx, float* __restrict__ partial, int batch, int k, int dInner,
                          int dbl, int seqSpan, L2_PREFETCH_PARAMS) {
#if ACT_BF16
  constexpr int K_MAX = 16 * MMA_K_STEPS * MMA_K_PARTS;
  __shared__ __align__(16) bf16_t sIn[MMA_SEQ_TILE * (K_MAX + 8)];
  __shared__ float sAcc[MMA_K_PARTS][MMA_ROWS][MMA_SEQ_TILE + 1];
  __shared__ float sPre[MMA_SEQ_TILE][MMA_ROWS];  // x's rows after the conv
  pdl_trigger();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int row0 = blockIdx.x * MMA_ROWS, n = 2 * dInner, ld = k + 8, k8 = k / 8;
  const bool xBlock = row0 < dInner;
  // this block's sequences: blockIdx.y's span of seqSpan (grid.y = ⌈batch / seqSpan⌉)
  const int bStart = blockIdx.y * seqSpan, bEnd = min(batch, bStart + seqSpan);
  const int rt = warp % 2, part = warp / 2, kLen = k / MMA_K_PARTS, kBase = part * kLen, steps = kLen / 16;

  // x_proj's weights for this block's channels: column `col` of x_proj, sequences part `xPart` of `xParts`
  const int xParts = STEP_GEMV_THREADS / dbl, col = threadIdx.x % dbl, xPart = threadIdx.x / dbl;
  const bool xProjs = xBlock && partial != nullptr && xPart < xParts;
  float wxv[MMA_ROWS];
#pragma unroll
  for (int u = 0; u < MMA_ROWS / 8; ++u)
    unpack_chunk8(xProjs ? load_chunk8(wx + (i64)col * dInner + row0 + 8 * u) : zero_chunk8(), wxv + 8 * u);
  // in_proj's weights: rows r and r + 8 of the warp's tile, its k part, as A fragments
  u32 a[MMA_K_STEPS][4];
  const bf16_t* w0 = w + (i64)(row0 + 16 * rt + g) * k + kBase + 2 * t;
  const bf16_t* w8 = w0 + 8 * (i64)k;
#pragma unroll
  for (int s = 0; s < MMA_K_STEPS; ++s)
    if (s < steps) {
      a[s][0] = *(const u32*)(w0 + 16 * s);
      a[s][1] = *(const u32*)(w8 + 16 * s);
      a[s][2] = *(const u32*)(w0 + 16 * s + 8);
      a[s][3] = *(const u32*)(w8 + 16 * s + 8);
    }
  // this thread's conv channel (the same in every item: item m is (row r, sequence j0 + m·8)) and its weights
  const int r = threadIdx.x % MMA_ROWS, j0 = threadIdx.x / MMA_ROWS, o = row0 + r;
  ConvTaps taps[MMA_ITEMS];
  const float bo = bias ? bias[o] : 0.0f;
  const auto load_windows = [&](int b0) {  // the conv state is this kernel's own: loads need not wait
#pragma unroll
    for (int m = 0; m < MMA_ITEMS; ++m) {
      const int b = b0 + j0 + m * (STEP_GEMV_THREADS / MMA_ROWS);
      if (xBlock && b < bEnd)
        taps[m] = conv_taps(convState + (i64)b * stateSeqStride + (i64)o * D_CONV, convW + o * D_CONV,
                            convB ? convB[o] : 0.0f);
    }
  };
  Vec16 rows[MMA_STAGE_LOADS];
  const auto load_rows = [&](int b0) {  // after pdl_wait: normed is add_rmsnorm's output
#pragma unroll
    for (int m = 0; m < MMA_STAGE_LOADS; ++m) {
      const int q = threadIdx.x + m * STEP_GEMV_THREADS, j = q / k8;
      if (b0 + j < bEnd && j < MMA_SEQ_TILE) rows[m] = ld_cg_vec16(normed + (i64)(b0 + j) * k + 8 * (q - j * k8));
    }
  };
  load_windows(bStart);
  PdlWaitPrefetch wait{L2_PREFETCH_ARGS};
  wait();
  load_rows(bStart);

  for (int b0 = bStart; b0 < bEnd; b0 += MMA_SEQ_TILE) {
    const int tb = min(MMA_SEQ_TILE, bEnd - b0);
    __syncthreads();  // the previous tile's sIn, sAcc and sPre are no longer read
#pragma unroll
    for (int m = 0; m < MMA_STAGE_LOADS; ++m) {
      const int q = threadIdx.x + m * STEP_GEMV_THREADS, j = q / k8;
      if (j < tb) *(Vec16*)(sIn + j * ld + 8 * (q - j * k8)) = rows[m];
    }
    ConvTaps cur[MMA_ITEMS];
#pragma unroll
    for (int m = 0; m < MMA_ITEMS; ++m) cur[m] = taps[m];
    if (b0 + MMA_SEQ_TILE < bEnd) {  // the next tile's loads, in flight while this one is multiplied
      load_rows(b0 + MMA_SEQ_TILE);
      load_windows(b0 + MMA_SEQ_TILE);
    }
    __syncthreads();
    for (int nt = 0; nt * 8 < tb; ++nt) {
      float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      const bf16_t* bp = sIn + (nt * 8 + g) * ld + kBase + 2 * t;
#pragma unroll
      for (int s = 0; s < MMA_K_STEPS; ++s)
        if (s < steps) {
          const u32 b[2] = {*(const u32*)(bp + 16 * s), *(const u32*)(bp + 16 * s + 8)};
          mma_bf16_16816(d, a[s], b);
        }
      const int rr = 16 * rt + g, c = nt * 8 + 2 * t;
      sAcc[part][rr][c] = d[0], sAcc[part][rr][c + 1] = d[1];
      sAcc[part][rr + 8][c] = d[2], sAcc[part][rr + 8][c + 1] = d[3];
    }
    __syncthreads();
    // each item: the parts' sum in order, as the GEMM's act_t output; z stored, x convolved
#pragma unroll
    for (int m = 0; m < MMA_ITEMS; ++m) {
      const int j = j0 + m * (STEP_GEMV_THREADS / MMA_ROWS), b = b0 + j;
      if (j >= tb) break;
      float sum = 0.0f;
#pragma unroll
      for (int p = 0; p < MMA_K_PARTS; ++p) sum += sAcc[p][r][j];
      const float v = act_round(sum + bo);
      if (!xBlock) {
        act_store(xz + (i64)b * n + o, v);
        continue;
      }
      const float xv = act_round(silu_f(conv_shift(convState + (i64)b * stateSeqStride + (i64)o * D_CONV, cur[m], v)));
      act_store(xOut + (i64)b * dInner + o, xv);
      sPre[j][r] = xv;
    }
    if (!xBlock || partial == nullptr) continue;
    __syncthreads();
    if (xPart < xParts)
      for (int j = xPart; j < tb; j += xParts) {
        float s4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int q = 0; q < MMA_ROWS; ++q) s4[q % 4] += wxv[q] * sPre[j][q];
        partial[((i64)blockIdx.x * batch + b0 + j) * dbl + col] = (s4[0] + s4[1]) + (s4[2] + s4[3]);
      }
  }
#endif
}
#endif  // DECISERVE_STEP_MMA_CU
