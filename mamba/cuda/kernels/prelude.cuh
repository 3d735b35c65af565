// Shared by every kernel file. No #include of CUDA headers: NVRTC compiles these sources on their own, and nvcc
// (the CI compile check) sees exactly the same text.
//
// Compile-time settings (passed as -D by the engine; defaults let a bare `nvcc --ptx` build each file):
//   ACT_BF16  1: the activations that feed cuBLAS (normed, xz, x, x_dbl, y) are bf16; 0: they are f32.
//   D_STATE   Mamba's d_state (16 in every public checkpoint); h lives in registers, so it must be known here.
//   D_CONV    Mamba's d_conv (4); the conv window lives in registers.
//   SCAN_FMA_EXP  how many of each step's D_STATE decays the prefill scan computes on the FMA pipe (scan_decay).
#ifndef DECISERVE_PRELUDE_CUH
#define DECISERVE_PRELUDE_CUH

#ifndef ACT_BF16
#define ACT_BF16 0
#endif
#ifndef D_STATE
#define D_STATE 16
#endif
#ifndef D_CONV
#define D_CONV 4
#endif
#ifndef SCAN_FMA_EXP
#define SCAN_FMA_EXP 0
#endif

typedef unsigned short bf16_t;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;

// bf16 <-> f32 by bit manipulation (round to nearest even; NaN stays a quiet NaN), so no cuda_bf16.h is needed.
__device__ __forceinline__ float bf16_to_f32(bf16_t v) { return __uint_as_float(((u32)v) << 16); }
__device__ __forceinline__ bf16_t f32_to_bf16(float f) {
  u32 u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (bf16_t)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (bf16_t)(u >> 16);
}

#if ACT_BF16
typedef bf16_t act_t;
__device__ __forceinline__ float act_load(const act_t* p) { return bf16_to_f32(*p); }
__device__ __forceinline__ void act_store(act_t* p, float v) { *p = f32_to_bf16(v); }
#else
typedef float act_t;
__device__ __forceinline__ float act_load(const act_t* p) { return *p; }
__device__ __forceinline__ void act_store(act_t* p, float v) { *p = v; }
#endif
// what rounding to the activation type does to v (the value a GEMM reading an act_t buffer would see)
__device__ __forceinline__ float act_round(float v) {
#if ACT_BF16
  return bf16_to_f32(f32_to_bf16(v));
#else
  return v;
#endif
}

// 2^v for the scan's decays exp(Δ·A) = 2^(Δ·aLog2), v ≤ 0: one MUFU.EX2 (2 ulp). exp2f adds range scaling for
// denormal results, three more instructions per state and step on the scan's critical pipe; here a decay below
// 2^-126 becomes 0, which changes nothing in h = decay·h + Δ·B·x.
__device__ __forceinline__ float decay_exp2(float v) {
#if defined(__CUDA_ARCH__)
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v));
  return r;
#else
  return exp2f(v);  // the CPU emulator
#endif
}

// 2^v for v ≤ 0 without the exp unit: v = j + f with j = round(v), 2^f by a degree-5 polynomial on [−½, ½] (fitted
// here by Lawson's minimax iteration: relative error 1.9e-7, as ex2.approx's 2 ulp; 2^0 = 1 exactly, so a zero step
// never grows h), and j added to the exponent bits. Adding 1.5·2^23 rounds v to an integer in t's low mantissa bits,
// so t's bits shifted by 23 are j's exponent offset. Below 2^-125 the decay stays 2^-125 (h's input dwarfs it).
__device__ __forceinline__ float decay_exp2_fma(float v) {
  v = fmaxf(v, -125.0f);
  const float t = v + 12582912.0f;
  const float f = v - (t - 12582912.0f);
  float p = 0.00132647273f;
  p = fmaf(p, f, 0.00967151299f);
  p = fmaf(p, f, 0.0555073358f);
  p = fmaf(p, f, 0.240222424f);
  p = fmaf(p, f, 0.693147004f);
  p = fmaf(p, f, 1.0f);
  return __uint_as_float(__float_as_uint(p) + (__float_as_uint(t) << 23));  // unsigned: wraps, as the bits need
}

// State n's decay in the prefill scan: the MUFU unit does 16 exps a clock per SM against the FMA pipe's 128 FMAs,
// and each step has D_STATE exps beside ~3 FMAs per state, so moving SCAN_FMA_EXP of them onto the FMA pipe (about
// 8 instructions each) balances the two. n is a constant once the state loop unrolls: the choice costs nothing.
__device__ __forceinline__ float scan_decay(int n, float v) {
  return n < SCAN_FMA_EXP ? decay_exp2_fma(v) : decay_exp2(v);
}

// Programmatic dependent launch (sm_90+; LaunchShape.programmatic): pdl_trigger lets the next kernel in the stream
// start its prologue now; pdl_wait blocks until the previous kernel has finished and its writes are visible. A kernel
// launched without the attribute, or built for an older GPU or the CPU emulator, passes both at once.
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// A launch's L2 prefetch (ops-args.ts l2Prefetch): `count` ranges of `bytes`, `stride` apart from `base`, that later
// launches will read. A decode step is a chain of small launches that leaves HBM mostly idle; asking L2 for the next
// layer's weights (and the scan's states) a few launches early turns their loads into L2 hits (the H100's unfused
// step ran 3–8% faster; the fused step's weight loads were already off its critical path, v15). Issuing costs the
// SM time (~270 GB/s from one), so callers spread it over many blocks, each after its own loads. Every block takes an
// equal share of the bytes; its thread 0 issues it as bulk prefetches
// (sm_90 cp.async.bulk.prefetch: a hint nothing waits on; older GPUs skip it, and the CPU emulator checks that each
// range is device memory). base, bytes and stride are multiples of 16 (the host checks).
#define L2_PREFETCH_PARAMS const char *pfBase, i64 pfBytes, i64 pfStride, int pfCount
#define L2_PREFETCH_ARGS pfBase, pfBytes, pfStride, pfCount
#define L2_PREFETCH_MAX 65536 // bytes a bulk prefetch asks for at most
__device__ __forceinline__ void l2_prefetch(L2_PREFETCH_PARAMS) {
#if (defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900) || (!defined(__CUDA_ARCH__) && !defined(__CUDACC__))
  if (pfBase == nullptr || pfCount <= 0 || threadIdx.x + threadIdx.y + threadIdx.z != 0) return;
  const i64 blocks = (i64)gridDim.x * gridDim.y * gridDim.z;
  const i64 block = blockIdx.x + (i64)gridDim.x * (blockIdx.y + (i64)gridDim.y * blockIdx.z);
  const i64 units = pfBytes / 16 * pfCount, share = (units + blocks - 1) / blocks;  // in 16-byte units
  i64 at = 16 * min(units, block * share);
  const i64 end = 16 * min(units, (block + 1) * share);
  while (at < end) {
    const i64 range = at / pfBytes, offset = at - range * pfBytes;
    const i64 n = min(min(end - at, pfBytes - offset), (i64)L2_PREFETCH_MAX);
#if defined(__CUDA_ARCH__)
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(pfBase + range * pfStride + offset), "r"((u32)n));
#else  // the CPU emulator
    emu_prefetch_l2(pfBase + range * pfStride + offset, (u64)n);
#endif
    at += n;
  }
#endif
}

// Loads of what a programmatic prerequisite kernel wrote, after pdl_wait: from L2 (ld.global.cg), never through the
// read-only cache that `const __restrict__` allows (that data is not read-only while the kernels overlap), and as
// volatile asm, so the compiler cannot hoist them above pdl_wait.
__device__ __forceinline__ float ld_cg_f32(const float* p) {
#if defined(__CUDA_ARCH__)
  float v;
  asm volatile("ld.global.cg.f32 %0, [%1];" : "=f"(v) : "l"(p));
  return v;
#else
  return *(volatile const float*)p;
#endif
}
// 16 bytes (p 16-byte aligned) of what a prerequisite kernel wrote, as four words or four floats
struct __align__(16) Vec16 {
  u32 a, b, c, d;
};
__device__ __forceinline__ Vec16 ld_cg_vec16(const void* p) {
  Vec16 v;
#if defined(__CUDA_ARCH__)
  asm volatile("ld.global.cg.v4.u32 {%0, %1, %2, %3}, [%4];" : "=r"(v.a), "=r"(v.b), "=r"(v.c), "=r"(v.d) : "l"(p));
#else
  const volatile u32* q = (const volatile u32*)p;
  v = Vec16{q[0], q[1], q[2], q[3]};
#endif
  return v;
}
struct __align__(16) F32x4 {
  float a, b, c, d;
};
__device__ __forceinline__ F32x4 ld_cg_f32x4(const float* p) {
  const Vec16 v = ld_cg_vec16(p);
  return F32x4{__uint_as_float(v.a), __uint_as_float(v.b), __uint_as_float(v.c), __uint_as_float(v.d)};
}
__device__ __forceinline__ float ld_cg_act(const act_t* p) {
#if ACT_BF16 && defined(__CUDA_ARCH__)
  unsigned short v;
  asm volatile("ld.global.cg.u16 %0, [%1];" : "=h"(v) : "l"(p));
  return bf16_to_f32(v);
#elif ACT_BF16
  return bf16_to_f32(*(volatile const bf16_t*)p);
#else
  return ld_cg_f32(p);
#endif
}

// 8 consecutive act_t elements, loaded as one (bf16) or two (f32) 16-byte vectors (Vec16 above); p must be
// 16-byte aligned.
struct Chunk8 {
#if ACT_BF16
  Vec16 v;
#else
  Vec16 v, w;
#endif
};
__device__ __forceinline__ Chunk8 load_chunk8(const act_t* p) {
  Chunk8 c;
  c.v = *(const Vec16*)p;
#if !ACT_BF16
  c.w = *(const Vec16*)(p + 4);
#endif
  return c;
}
// load_chunk8 of what a prerequisite kernel wrote (ld_cg_f32 has why)
__device__ __forceinline__ Chunk8 ld_cg_chunk8(const act_t* p) {
  Chunk8 c;
  c.v = ld_cg_vec16(p);
#if !ACT_BF16
  c.w = ld_cg_vec16(p + 4);
#endif
  return c;
}
__device__ __forceinline__ Chunk8 zero_chunk8() {
  Chunk8 c;
  c.v = Vec16{0, 0, 0, 0};
#if !ACT_BF16
  c.w = Vec16{0, 0, 0, 0};
#endif
  return c;
}
__device__ __forceinline__ void unpack_chunk8(const Chunk8& c, float* out) {
#if ACT_BF16
  const u32 words[4] = {c.v.a, c.v.b, c.v.c, c.v.d};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    out[2 * i] = __uint_as_float(words[i] << 16);
    out[2 * i + 1] = __uint_as_float(words[i] & 0xffff0000u);
  }
#else
  const u32 words[8] = {c.v.a, c.v.b, c.v.c, c.v.d, c.w.a, c.w.b, c.w.c, c.w.d};
#pragma unroll
  for (int i = 0; i < 8; ++i) out[i] = __uint_as_float(words[i]);
#endif
}

__device__ __forceinline__ float silu_f(float v) { return v / (1.0f + expf(-v)); }
// PyTorch's softplus threshold (linear above 20), as the reference and the selective-scan kernels use.
__device__ __forceinline__ float softplus_f(float v) { return v > 20.0f ? v : log1pf(expf(v)); }

// A decode step's conv for one (sequence, channel), in two parts so that a kernel can read the state and weights
// early: conv_taps reads the state's kept part (its last D_CONV - 1 pre-conv inputs; the state holds the last D_CONV,
// oldest first) and the weights; conv_shift shifts x in, writes the state back and returns Σ_k w[k]·window[k] + bias,
// before SiLU.
struct ConvTaps {
  float win[D_CONV], w[D_CONV], bias;
};
__device__ __forceinline__ ConvTaps conv_taps(const float* st, const float* w, float bias) {
  ConvTaps t;
#pragma unroll
  for (int k = 0; k < D_CONV; ++k) {
    t.win[k] = k < D_CONV - 1 ? st[k + 1] : 0.0f;
    t.w[k] = w[k];
  }
  t.bias = bias;
  return t;
}
__device__ __forceinline__ float conv_shift(float* st, ConvTaps& t, float x) {
  t.win[D_CONV - 1] = x;
  float acc = t.bias;
#pragma unroll
  for (int k = 0; k < D_CONV; ++k) {
    acc += t.w[k] * t.win[k];
    st[k] = t.win[k];
  }
  return acc;
}

// A decode step's scan over N states of one (sequence, channel): h ← exp(Δ·A) ⊙ h + Δ·x·B, returns their part of
// C·h. a2 holds those states' A·log2(e); bc(n) gives (B_n, C_n).
template <int N, typename BC>
__device__ __forceinline__ float ssm_update(float* h, float delta, float dx, const float* a2, BC bc) {
  float acc = 0.0f;
#pragma unroll
  for (int n = 0; n < N; ++n) {
    float bn, cn;
    bc(n, &bn, &cn);
    const float hn = decay_exp2(delta * a2[n]) * h[n] + dx * bn;
    h[n] = hn;
    acc += cn * hn;
  }
  return acc;
}

// A decode step's scan splits a channel's state over ssm_step_lanes() adjacent lanes, each holding a 16-byte run of
// it, at most 8 lanes: a warp's state loads and stores are then contiguous. A state that does not split so is one
// lane's.
__host__ __device__ constexpr int ssm_step_lanes() {
  for (int lanes = 8; lanes > 1; lanes >>= 1)
    if (D_STATE % (4 * lanes) == 0) return lanes;
  return 1;
}
template <int LANES>
__device__ __forceinline__ float lanes_sum(float v) {
#pragma unroll
  for (int o = LANES / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
#define STEP_DT_PREFETCH 48  // dt_proj weights a channel's lanes hold before x_dbl is read (all of 130m's)
template <int LANES>
__host__ __device__ constexpr int dt_prefetch() {
  return (STEP_DT_PREFETCH + LANES - 1) / LANES;
}
// This lane's dt_proj weights: rows q + LANES·i (< dtRank) of column c of the transposed weight [dtRank, dInner].
template <int LANES, int PREFETCH>
__device__ __forceinline__ void load_dt_weights(float* wdt, const act_t* __restrict__ wdtT, int q, int dtRank,
                                                int dInner, int c) {
#pragma unroll
  for (int i = 0; i < PREFETCH; ++i) {
    const int r = q + LANES * i;
    wdt[i] = r < dtRank ? act_load(wdtT + (i64)r * dInner + c) : 0.0f;
  }
}
// S sequences' decode step of one channel split over the channel's LANES lanes (the first `live` sequences step; live
// is the same for the whole block), from each x_dbl row [dt | B | C] through xd(j, i): this lane's share of dt_proj's
// sums (wdt from load_dt_weights; the weights past those are loaded once for all S), Δ = softplus(dt + bias), then
// its RUN states h[j] (a2: their A·log2 e) updated in place; acc[j] = C·h over all the channel's states.
template <int LANES, int RUN, int PREFETCH, int S, typename XD>
__device__ __forceinline__ void ssm_lane_steps(XD xd, int live, int q, const float* wdt, const act_t* __restrict__ wdtT,
                                               int dtRank, int dInner, int c, float bias, const float* xv,
                                               float (*h)[RUN], const float* a2, float* acc) {
  float dt[S];
#pragma unroll
  for (int j = 0; j < S; ++j) dt[j] = 0.0f;
#pragma unroll
  for (int i = 0; i < PREFETCH; ++i)
    if (q + LANES * i < dtRank)  // past dtRank xd may be anything, NaN included
#pragma unroll
      for (int j = 0; j < S; ++j) dt[j] += wdt[i] * xd(j, q + LANES * i);
  for (int r = q + LANES * PREFETCH; r < dtRank; r += LANES) {
    const float w = act_load(wdtT + (i64)r * dInner + c);
#pragma unroll
    for (int j = 0; j < S; ++j) dt[j] += w * xd(j, r);
  }
  const int bc = dtRank + q * RUN;
#pragma unroll
  for (int j = 0; j < S; ++j) {
    if (j >= live) break;
    const float delta = softplus_f(lanes_sum<LANES>(dt[j]) + bias);
    acc[j] = lanes_sum<LANES>(ssm_update<RUN>(h[j], delta, delta * xv[j], a2, [&](int n, float* bn, float* cn) {
      *bn = xd(j, bc + n);
      *cn = xd(j, bc + D_STATE + n);
    }));
  }
}
// One sequence's step (ssm_lane_steps with S = 1); returns C·h.
template <int LANES, int RUN, int PREFETCH, typename XD>
__device__ __forceinline__ float ssm_lane_step(XD xd, int q, const float* wdt, const act_t* __restrict__ wdtT,
                                               int dtRank, int dInner, int c, float bias, float xv, float* h,
                                               const float* a2) {
  float acc;
  ssm_lane_steps<LANES, RUN, PREFETCH, 1>([&](int, int i) { return xd(i); }, 1, q, wdt, wdtT, dtRank, dInner, c, bias,
                                          &xv, (float(*)[RUN])h, a2, &acc);
  return acc;
}

// N consecutive floats between global memory and registers, 16 bytes a load where N allows (p then 16-byte aligned)
template <int N>
__device__ __forceinline__ void load_run(const float* p, float* v) {
#pragma unroll
  for (int n = 0; n + 3 < N && N % 4 == 0; n += 4) {
    const F32x4 w = *(const F32x4*)(p + n);
    v[n] = w.a, v[n + 1] = w.b, v[n + 2] = w.c, v[n + 3] = w.d;
  }
  if (N % 4 != 0)
#pragma unroll
    for (int n = 0; n < N; ++n) v[n] = p[n];
}
template <int N>
__device__ __forceinline__ void store_run(float* p, const float* v) {
#pragma unroll
  for (int n = 0; n + 3 < N && N % 4 == 0; n += 4) *(F32x4*)(p + n) = F32x4{v[n], v[n + 1], v[n + 2], v[n + 3]};
  if (N % 4 != 0)
#pragma unroll
    for (int n = 0; n < N; ++n) p[n] = v[n];
}

__device__ __forceinline__ float warp_sum_f(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max_f(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the total.
__device__ __forceinline__ float block_sum_f(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum_f(v);
  __syncthreads();  // partial[] may still be read by a previous call
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float t = lane < warps ? partial[lane] : 0.0f;
  return warp_sum_f(t);
}
__device__ __forceinline__ float block_max_f(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max_f(v);
  __syncthreads();
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  float t = lane < warps ? partial[lane] : -3.402823466e38f;
  return warp_max_f(t);
}

// Exclusive prefix count of a 0/1 flag over the block, in thread order; *total gets the block's count.
__device__ __forceinline__ int block_exclusive_count(bool flag, int* total) {
  __shared__ int warpCounts[33];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  const u32 ballot = __ballot_sync(0xffffffffu, flag);
  const int inWarp = __popc(ballot & ((1u << lane) - 1u));
  __syncthreads();  // warpCounts may still be read by a previous call
  if (lane == 0) warpCounts[warp] = __popc(ballot);
  __syncthreads();
  if (threadIdx.x == 0) {
    int run = 0;
    for (int w = 0; w < warps; ++w) {
      const int c = warpCounts[w];
      warpCounts[w] = run;
      run += c;
    }
    warpCounts[32] = run;
  }
  __syncthreads();
  *total = warpCounts[32];
  return warpCounts[warp] + inWarp;
}

#endif  // DECISERVE_PRELUDE_CUH
