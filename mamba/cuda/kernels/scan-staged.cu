// scan.cu's passes 1 and 3 with their inputs staged through shared memory by asynchronous copies (engine option
// scan: 'split-staged'). The arithmetic is scan.cu's, step for step; only where the operands come from differs.
// Nsight Compute had those passes stalled on global loads for half their cycles (one step's Δ/x/z loaded a step
// ahead, in registers): here SCAN_STAGES − 1 stages of SCAN_STAGE_STEPS rows are in flight while a stage is scanned,
// and cp.async puts them in shared memory without holding registers, so the exp unit stays fed.
// Each stage holds, for the block's SCAN_THREADS channels, the rows' Δ (or raw dt), x (and z) and the B (and C) rows,
// in their stored types; a row segment is copied 16 bytes at a time where its address and stride allow, else element
// by element (a tiny model's odd dt_rank can leave B unaligned).
#include "prelude.cuh"

// defaults; the engine option scanStage sets others (a stage's buffers must fit 48 KB of static shared memory)
#ifndef SCAN_STAGE_STEPS
#define SCAN_STAGE_STEPS 8  // rows a stage
#endif
#ifndef SCAN_STAGES
#define SCAN_STAGES 3  // stages in the ring: two in flight while one is scanned
#endif

__device__ __forceinline__ void copy_async16(void* dst, const void* src, int srcBytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  unsigned long long s;
  asm("cvta.to.shared.u64 %0, %1;" : "=l"(s) : "l"(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"((unsigned)s), "l"(src), "r"(srcBytes) : "memory");
#else  // older GPUs and the CPU emulator: a plain copy (zero-filled past srcBytes, as cp.async does)
  for (int i = 0; i < 16; ++i) ((char*)dst)[i] = i < srcBytes ? ((const char*)src)[i] : 0;
#endif
}
__device__ __forceinline__ void copy_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;" ::: "memory");
#endif
}
// every copy but those of the newest `pending` committed groups has landed (in this thread's view)
template <int pending>
__device__ __forceinline__ void copy_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;" ::"n"(pending) : "memory");
#endif
}

// A [rows × stride] operand and whether its rows are 16-byte aligned (then so is every 16-byte column group), decided
// once a block rather than at every stage.
template <typename T>
struct StagedMatrix {
  const T* p;
  i64 stride;
  bool vec;
};
template <typename T>
__device__ __forceinline__ StagedMatrix<T> staged_matrix(const T* p, i64 stride) {
  return {p, stride, (((unsigned long long)p | (unsigned long long)(stride * (i64)sizeof(T))) & 15) == 0};
}

// Rows [row, row + n) × columns [col, col + W) of m into dst[STAGE_STEPS][PAD] (zeros past n rows or `cols` columns).
template <typename T, int W, int PAD>
__device__ __forceinline__ void stage_rows_async(T (*dst)[PAD], const StagedMatrix<T>& m, i64 row, int n, int col,
                                                 int cols) {
  constexpr int PER = 16 / sizeof(T);
  constexpr int GROUPS = (W + PER - 1) / PER;
  static_assert(PAD >= GROUPS * PER, "a staged row holds whole 16-byte groups");
  for (int i = threadIdx.x; i < SCAN_STAGE_STEPS * GROUPS; i += SCAN_THREADS) {
    const int t = i / GROUPS, g = i % GROUPS, c = col + g * PER;
    const int valid = t < n ? max(0, min(PER, cols - c)) : 0;
    const T* s = m.p + (row + t) * m.stride + c;
    T* d = &dst[t][g * PER];
    if (m.vec) {
      copy_async16(d, valid ? s : m.p, valid * (int)sizeof(T));
    } else {
      for (int e = 0; e < PER; ++e) d[e] = e < valid ? s[e] : T(0);
    }
  }
}

// A staged B (or C) row in f32 registers: 16-byte loads, bf16 widened by a shift or a mask.
__device__ __forceinline__ void staged_row(const act_t* row, float (&v)[D_STATE]) {
#if ACT_BF16 && D_STATE % 8 == 0
#pragma unroll
  for (int q = 0; q < D_STATE / 8; ++q) {
    const Vec16 w = reinterpret_cast<const Vec16*>(row)[q];
    const u32 words[4] = {w.a, w.b, w.c, w.d};
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      v[8 * q + 2 * j] = __uint_as_float(words[j] << 16);
      v[8 * q + 2 * j + 1] = __uint_as_float(words[j] & 0xffff0000u);
    }
  }
#elif !ACT_BF16
  tile_row(row, v);
#else
#pragma unroll
  for (int n = 0; n < D_STATE; ++n) v[n] = act_load(row + n);
#endif
}

#define STAGED_B_PAD (((D_STATE * (int)sizeof(act_t) + 15) / 16) * 16 / (int)sizeof(act_t))

// One stage's buffers; pass 1 leaves z and C out.
template <bool OUTPUT>
struct ScanStage {
  __align__(16) float d[SCAN_STAGE_STEPS][SCAN_THREADS];
  __align__(16) act_t x[SCAN_STAGE_STEPS][SCAN_THREADS];
  __align__(16) act_t z[OUTPUT ? SCAN_STAGE_STEPS : 1][SCAN_THREADS];
  __align__(16) act_t b[SCAN_STAGE_STEPS][STAGED_B_PAD];
  __align__(16) act_t c[OUTPUT ? SCAN_STAGE_STEPS : 1][STAGED_B_PAD];
};

struct StagedOperands {
  StagedMatrix<float> delta;
  StagedMatrix<act_t> x, z, b, c;  // pass 1: z and c unused
};

// Stage k of the chunk (rows start + k·STAGE_STEPS …) into its ring slot, then one commit (an empty group past the
// chunk's end keeps every thread's group count the same).
template <bool OUTPUT>
__device__ __forceinline__ void stage_issue(ScanStage<OUTPUT>* ring, const StagedOperands& o, int k, int start,
                                            int len, int dInner) {
  const int t0 = k * SCAN_STAGE_STEPS;
  if (t0 < len) {
    ScanStage<OUTPUT>& s = ring[k % SCAN_STAGES];
    const int n = min(SCAN_STAGE_STEPS, len - t0), c0 = blockIdx.y * SCAN_THREADS;
    const i64 row = start + t0;
    stage_rows_async<float, SCAN_THREADS, SCAN_THREADS>(s.d, o.delta, row, n, c0, dInner);
    stage_rows_async<act_t, SCAN_THREADS, SCAN_THREADS>(s.x, o.x, row, n, c0, dInner);
    stage_rows_async<act_t, D_STATE, STAGED_B_PAD>(s.b, o.b, row, n, 0, D_STATE);
    if (OUTPUT) {
      stage_rows_async<act_t, SCAN_THREADS, SCAN_THREADS>(s.z, o.z, row, n, c0, dInner);
      stage_rows_async<act_t, D_STATE, STAGED_B_PAD>(s.c, o.c, row, n, 0, D_STATE);
    }
  }
  copy_async_commit();
}

// Waits for stage k, then issues stage k + SCAN_STAGES − 1 into the slot every thread finished with (k − 1's).
template <bool OUTPUT>
__device__ __forceinline__ ScanStage<OUTPUT>& stage_next(ScanStage<OUTPUT>* ring, const StagedOperands& o, int k,
                                                         int start, int len, int dInner) {
  copy_async_wait<SCAN_STAGES - 2>();
  __syncthreads();
  stage_issue(ring, o, k + SCAN_STAGES - 1, start, len, dInner);
  return ring[k % SCAN_STAGES];
}

extern "C" __global__ void __launch_bounds__(SCAN_THREADS)
scan_chunk_state_staged(const act_t* __restrict__ x, i64 xStride, float* __restrict__ delta, i64 deltaStride,
                        const float* __restrict__ dtBias, const act_t* __restrict__ bMat, i64 bStride,
                        const float* __restrict__ aLog2, const int* __restrict__ chunkStart,
                        const int* __restrict__ chunkLen, float* __restrict__ chunkH,
                        float* __restrict__ chunkDeltaSum, int dInner) {
  __shared__ ScanStage<false> ring[SCAN_STAGES];
  const int chunk = blockIdx.x;
  float a[D_STATE], h[D_STATE];
  const auto [c, start, len, active] = chunk_lane(chunkStart, chunkLen, aLog2, dInner, a);
#pragma unroll
  for (int n = 0; n < D_STATE; ++n) h[n] = 0.0f;
  double deltaSum = 0.0;  // in double, as scan_chunk_state
  const float bias = dtBias && active ? dtBias[c] : 0.0f;
  const StagedOperands o{staged_matrix<float>(delta, deltaStride), staged_matrix(x, xStride), {},
                         staged_matrix(bMat, bStride), {}};
  for (int k = 0; k < SCAN_STAGES - 1; ++k) stage_issue(ring, o, k, start, len, dInner);
  for (int k = 0; k * SCAN_STAGE_STEPS < len; ++k) {
    const ScanStage<false>& s = stage_next(ring, o, k, start, len, dInner);
    const int tl = min(SCAN_STAGE_STEPS, len - k * SCAN_STAGE_STEPS);
    if (!active) continue;
    for (int tt = 0; tt < tl; ++tt) {
      float dt = s.d[tt][threadIdx.x];
      if (dtBias) {  // Δ formed here and written back for pass 3
        dt = softplus_f(dt + bias);
        delta[(start + k * SCAN_STAGE_STEPS + tt) * deltaStride + c] = dt;
      }
      const float dx = dt * act_load(&s.x[tt][threadIdx.x]);
      deltaSum += dt;
      float bv[D_STATE];
      staged_row(s.b[tt], bv);
#pragma unroll
      for (int n = 0; n < D_STATE; ++n) h[n] = scan_decay(n, dt * a[n]) * h[n] + dx * bv[n];
    }
  }
  copy_async_wait<0>();  // no copy may land after the block has exited
  if (!active) return;
  float* out = chunkH + ((i64)chunk * dInner + c) * D_STATE;
#pragma unroll
  for (int n = 0; n < D_STATE; ++n) out[n] = h[n];
  chunkDeltaSum[(i64)chunk * dInner + c] = (float)deltaSum;
}

extern "C" __global__ void __launch_bounds__(SCAN_THREADS)
scan_chunk_output_staged(const act_t* __restrict__ x, i64 xStride, const float* __restrict__ delta, i64 deltaStride,
                         const act_t* __restrict__ z, i64 zStride, const act_t* __restrict__ bMat, i64 bStride,
                         const act_t* __restrict__ cMat, i64 cStride, const float* __restrict__ aLog2,
                         const float* __restrict__ dSkip, const int* __restrict__ chunkStart,
                         const int* __restrict__ chunkLen, const float* __restrict__ chunkH, act_t* __restrict__ y,
                         i64 yStride, int dInner) {
  __shared__ ScanStage<true> ring[SCAN_STAGES];
  const int chunk = blockIdx.x;
  float a[D_STATE], h[D_STATE];
  const auto [c, start, len, active] = chunk_lane(chunkStart, chunkLen, aLog2, dInner, a);
  const float* hStart = chunkH + ((i64)chunk * dInner + (active ? c : 0)) * D_STATE;
#pragma unroll
  for (int n = 0; n < D_STATE; ++n) h[n] = active ? hStart[n] : 0.0f;
  const float dc = active ? dSkip[c] : 0.0f;
  const StagedOperands o{staged_matrix(delta, deltaStride), staged_matrix(x, xStride), staged_matrix(z, zStride),
                         staged_matrix(bMat, bStride), staged_matrix(cMat, cStride)};
  for (int k = 0; k < SCAN_STAGES - 1; ++k) stage_issue(ring, o, k, start, len, dInner);
  for (int k = 0; k * SCAN_STAGE_STEPS < len; ++k) {
    const ScanStage<true>& s = stage_next(ring, o, k, start, len, dInner);
    const int tl = min(SCAN_STAGE_STEPS, len - k * SCAN_STAGE_STEPS);
    if (!active) continue;
    for (int tt = 0; tt < tl; ++tt) {
      const float dt = s.d[tt][threadIdx.x];
      const float xv = act_load(&s.x[tt][threadIdx.x]);
      const float dx = dt * xv;
      float bv[D_STATE], cv[D_STATE];
      staged_row(s.b[tt], bv);
      staged_row(s.c[tt], cv);
      float acc = 0.0f;
#pragma unroll
      for (int n = 0; n < D_STATE; ++n) {
        h[n] = scan_decay(n, dt * a[n]) * h[n] + dx * bv[n];
        acc += cv[n] * h[n];
      }
      const i64 row = start + k * SCAN_STAGE_STEPS + tt;
      act_store(y + row * yStride + c, (acc + dc * xv) * silu_f(act_load(&s.z[tt][threadIdx.x])));
    }
  }
  copy_async_wait<0>();
}
