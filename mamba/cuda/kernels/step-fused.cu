// A decode step in three launches a layer instead of six, for up to STEP_GEMV_BATCH sequences (decode.ts, mixer.ts
// 'step' with fused kernels). At one token per sequence a launch moves a few megabytes at most, so a kernel's time is
// its memory latency: every kernel here issues the loads that do not depend on the previous kernel (weights, states)
// first, and only then reads what the previous kernel wrote. The math and the roundings are step.cu's and the
// prefill's (normed, x, x_dbl and y rounded to act_t).
//   step_in_proj_conv: residual += hidden, RMSNorm, in_proj; on x's rows conv + SiLU and x_proj's partial sums
//   step_dt_ssm:       x_proj's sums, then as step.cu's ssm_step_dt: dt_proj + bias → softplus → Δ, the scan → y
//   step_out_proj:     out_proj (+ bias)
// and after the last layer, for greedy steps, head_greedy: final norm, lm_head and argmax without the logits.
// Launched as programmatic dependents (LaunchShape.programmatic), each kernel lets the next one start at once and
// waits (pdl_wait) only where it first reads or writes what the previous kernels touch, so a kernel's weight loads
// overlap the previous kernel's tail. Everything before pdl_wait reads only weights and this layer's own state.
// x_proj is split over in_proj's x-row blocks, whose partial sums step_dt_ssm adds up in a fixed order (no atomics:
// a step gives the same tokens every run).
#ifndef DECISERVE_STEP_FUSED_CU  // step-layers.cu includes it too
#define DECISERVE_STEP_FUSED_CU
#include "prelude.cuh"

#define STEP_GEMV_BATCH 8     // most sequences a step takes (past it decode.ts runs mixer.ts's five launches)
#define STEP_GEMV_THREADS 256 // threads of every fused kernel's block
#define STEP_IN_ROWS 4        // in_proj rows a warp: 32 a block, so x's blocks hold 32 channels each
#define STEP_OUT_ROWS 2       // out_proj rows a warp
#define STEP_DBL_MAX 256      // dtRank + 2·dState at most: a thread a column of x_proj
#define STEP_SMEM_BYTES 32768 // staged GEMV inputs, as act_t (what a GEMM would read): k ≤ 8192 (ops-step.ts checks)
#define STEP_SMEM_ELEMS (STEP_SMEM_BYTES / (int)sizeof(act_t))
#define STEP_STAGE_LOADS 8    // 16-byte loads of the residual stream a thread issues before it uses any
// ... where the norm reads them once (tb·k ≤ 2048). bf16 only, and not step_layers: more registers, or f32's wider
// weight chunks, spill in_proj's GEMV
#define STEP_ONE_PASS_LOADS (ACT_BF16 ? 2 : 0)
#define STEP_SUM_LOADS 16     // x_proj partial sums a thread of step_dt_ssm loads before it adds any
#if ACT_BF16
#define STEP_CHUNKS 4 // 8-element weight chunks a lane loads at once (bf16: 16 bytes a chunk)
#define STEP_OUT_CHUNKS 6 // step_out_proj's: d_inner 1536 in one round, so no weight load waits behind the wait
#else
#define STEP_CHUNKS 2 // f32: 32 bytes a chunk, so half as many for the same registers
#define STEP_OUT_CHUNKS STEP_CHUNKS
#endif

// The GEMV of in_proj, out_proj and the greedy head for sequences b0..b0+tb (tb ≤ 8): out(b, o) = Σ_i w[o, i]·in(b, i),
// ROWS output rows a warp, the block's rows those of row block `rowBlock`. Each round, a lane loads CHUNKS
// 8-element chunks of each of its rows, all before any is used; the first round's loads are issued before `stage`
// (which reads what the previous kernel wrote) fills sIn with the tb input rows as act_t (k % 8 == 0,
// tb·k ≤ STEP_SMEM_ELEMS), so the weights' latency overlaps it. store(b, o, sum) gets every sum once, in lane 0 of the
// row's warp. Forms one and two loaded 4 bytes a lane in a loop that waited on each load (~11 µs a launch on the H100
// against ~4 µs for cuBLAS).
template <int ROWS, int CHUNKS = STEP_CHUNKS, typename Stage, typename Store>
__device__ __forceinline__ void block_gemv(act_t* sIn, const act_t* __restrict__ w, int k, int n, int rowBlock, int b0,
                                           int tb, Stage stage, Store store) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int o0 = (rowBlock * (STEP_GEMV_THREADS / 32) + warp) * ROWS;
  const int kChunks = k / 8, roundChunks = 32 * CHUNKS;
  float acc[ROWS][STEP_GEMV_BATCH];
#pragma unroll
  for (int r = 0; r < ROWS; ++r)
#pragma unroll
    for (int j = 0; j < STEP_GEMV_BATCH; ++j) acc[r][j] = 0.0f;
  for (int q0 = 0; q0 < kChunks; q0 += roundChunks) {
    Chunk8 wc[ROWS][CHUNKS];
#pragma unroll
    for (int r = 0; r < ROWS; ++r)
#pragma unroll
      for (int u = 0; u < CHUNKS; ++u) {
        const int q = q0 + u * 32 + lane, o = o0 + r;
        wc[r][u] = (o < n && q < kChunks) ? load_chunk8(w + (i64)o * k + 8 * q) : zero_chunk8();
      }
    if (q0 == 0) {
      __syncthreads();  // the previous tile's inputs are no longer read
      stage(sIn, b0, tb);
      __syncthreads();
    }
#pragma unroll
    for (int u = 0; u < CHUNKS; ++u) {
      const int q = q0 + u * 32 + lane;
      if (q >= kChunks) break;
      float wv[ROWS][8];
#pragma unroll
      for (int r = 0; r < ROWS; ++r) unpack_chunk8(wc[r][u], wv[r]);
#pragma unroll
      for (int j = 0; j < STEP_GEMV_BATCH; ++j) {
        if (j >= tb) break;
        float in[8];
        unpack_chunk8(load_chunk8(sIn + j * k + 8 * q), in);
#pragma unroll
        for (int r = 0; r < ROWS; ++r) {
          float s = 0.0f;
#pragma unroll
          for (int e = 0; e < 8; ++e) s += wv[r][e] * in[e];
          acc[r][j] += s;
        }
      }
    }
  }
#pragma unroll
  for (int j = 0; j < STEP_GEMV_BATCH; ++j) {
    if (j >= tb) break;
#pragma unroll
    for (int r = 0; r < ROWS; ++r) {
      const float t = warp_sum_f(acc[r][j]);
      if (lane == 0 && o0 + r < n) store(b0 + j, o0 + r, t);
    }
  }
}

// sequences a GEMV tile stages at once: all 8 while k ≤ 2048 (bf16) or 1024 (f32)
__device__ __forceinline__ int gemv_tile(int k) { return min(STEP_GEMV_BATCH, STEP_SMEM_ELEMS / k); }

// A block's GEMV input: s = RMSNorm(hidden + residualIn)·normW for sequences b0..b0+tb, rounded to act_t as the GEMM's
// normed input would be (the first layer, ids non-null, starts the residual stream from the embedding rows
// table[ids[b]]); residualOut, when not null, gets the residual stream. Calls wait() first: what hidden and residualIn
// hold is the previous kernel's (pdl_wait) or the previous stage's (step-layers.cu's grid barrier). A warp a
// sequence sums the squares (all sequences at once), then every thread scales (reading the rows again, from L2). Rows
// are read 16 bytes a load, STEP_STAGE_LOADS loads before any is used: the stores between uses may alias these rows for
// all the compiler knows, so loads interleaved with them would each wait for the one before (a plain loop over 1.4b's
// 2048-wide rows cost 27 µs a launch on the H100).
template <int ONE_PASS = STEP_ONE_PASS_LOADS, typename Wait>
__device__ __forceinline__ void stage_rmsnorm(Wait wait, act_t* s, int b0, int tb, const float* hidden,
                                              const float* residualIn, float* residualOut, const int* ids,
                                              const float* table, const float* __restrict__ normW, float eps, int k,
                                              float* sScale) {
  wait();
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, k4 = k / 4;
  // element `at` of sequence b's residual stream: hidden + residualIn, or in the first layer (ids non-null) the
  // embedding row of b's token
  const auto value4 = [&](int b, i64 at) {
    if (ids) return *(const F32x4*)(table + (i64)ids[b] * k + at);
    const F32x4 h = ld_cg_f32x4(hidden + (i64)b * k + at), r = ld_cg_f32x4(residualIn + (i64)b * k + at);
    return F32x4{h.a + r.a, h.b + r.b, h.c + r.c, h.d + r.d};
  };
  if constexpr (ONE_PASS > 0) if (k % 128 == 0 && tb * k4 <= STEP_GEMV_THREADS * ONE_PASS) {
    // A small tile (batch 1–2 at d_model 768): each thread loads its elements once, a warp's 32 lanes within one row
    // (k % 128 == 0), sums their squares per warp into sSq, and after one barrier scales what it holds, so the rows
    // cross L2 once (the two passes below read them twice, with a barrier between).
    __shared__ float sSq[ONE_PASS * (STEP_GEMV_THREADS / 32)];
    F32x4 v[ONE_PASS];
#pragma unroll
    for (int m = 0; m < ONE_PASS; ++m) {
      const int t = threadIdx.x + m * STEP_GEMV_THREADS, j = t / k4;
      if (t < tb * k4) v[m] = value4(b0 + j, 4 * (t - j * k4));
    }
#pragma unroll
    for (int m = 0; m < ONE_PASS; ++m) {
      const int t = threadIdx.x + m * STEP_GEMV_THREADS, j = t / k4;
      if (t >= tb * k4) break;
      if (residualOut) *(F32x4*)(residualOut + (i64)(b0 + j) * k + 4 * (t - j * k4)) = v[m];
      const float ss = warp_sum_f(v[m].a * v[m].a + v[m].b * v[m].b + v[m].c * v[m].c + v[m].d * v[m].d);
      if (lane == 0) sSq[t / 32] = ss;
    }
    __syncthreads();
    const int rowChunks = k4 / 32;  // sSq's entries a row, summed in order
#pragma unroll
    for (int m = 0; m < ONE_PASS; ++m) {
      const int t = threadIdx.x + m * STEP_GEMV_THREADS, j = t / k4, i = 4 * (t - j * k4);
      if (t >= tb * k4) break;
      float ss = 0.0f;
      for (int c = 0; c < rowChunks; ++c) ss += sSq[j * rowChunks + c];
      const float sc = rsqrtf(ss / (float)k + eps), e[4] = {v[m].a, v[m].b, v[m].c, v[m].d};
#pragma unroll
      for (int q = 0; q < 4; ++q) act_store(s + j * k + i + q, e[q] * sc * normW[i + q]);
    }
    return;
  }
  if (warp < tb) {
    const i64 row = (i64)(b0 + warp) * k;
    float ss = 0.0f;
    for (int u0 = lane; u0 < k4; u0 += 32 * STEP_STAGE_LOADS) {
      F32x4 v[STEP_STAGE_LOADS];
#pragma unroll
      for (int m = 0; m < STEP_STAGE_LOADS; ++m)
        if (u0 + 32 * m < k4) v[m] = value4(b0 + warp, 4 * (u0 + 32 * m));
#pragma unroll
      for (int m = 0; m < STEP_STAGE_LOADS; ++m) {
        if (u0 + 32 * m >= k4) break;
        if (residualOut) *(F32x4*)(residualOut + row + 4 * (u0 + 32 * m)) = v[m];
        ss += v[m].a * v[m].a + v[m].b * v[m].b + v[m].c * v[m].c + v[m].d * v[m].d;
      }
    }
    ss = warp_sum_f(ss);
    if (lane == 0) sScale[warp] = rsqrtf(ss / (float)k + eps);
  }
  __syncthreads();
  for (int t0 = threadIdx.x; t0 < tb * k4; t0 += blockDim.x * STEP_STAGE_LOADS) {
    F32x4 v[STEP_STAGE_LOADS];
#pragma unroll
    for (int m = 0; m < STEP_STAGE_LOADS; ++m) {
      const int t = t0 + m * blockDim.x, j = t / k4;
      if (t < tb * k4) v[m] = value4(b0 + j, 4 * (t - j * k4));
    }
#pragma unroll
    for (int m = 0; m < STEP_STAGE_LOADS; ++m) {
      const int t = t0 + m * blockDim.x, j = t / k4, i = 4 * (t - j * k4);
      if (t >= tb * k4) break;
      const float sc = sScale[j], e[4] = {v[m].a, v[m].b, v[m].c, v[m].d};
#pragma unroll
      for (int q = 0; q < 4; ++q) act_store(s + j * k + i + q, e[q] * sc * normW[i + q]);
    }
  }
}

// Block of 32 in_proj rows (grid: 2·dInner / 32, x's rows first):
//   residualOut = hidden + residualIn (first layer: the token's embedding row); xz = in_proj(RMSNorm(residualOut)·normW) (+ bias), z's rows stored in xz;
//   on x's rows: conv + SiLU → x, then partial[blk, b, j] = Σ over the block's channels of x_proj[j, c]·x[b, c].
// Every block forms the normed rows itself; block 0 also writes the new residual, into the other buffer of a pair,
// since every block reads the old one.
// The three stages are block functions (a block's share of the stage: `blk`, and for step_dt_ssm `b`) that call
// wait() once, before they first read what the previous stage wrote: pdl_wait in the kernels here, a grid barrier in
// step-layers.cu's one launch for every layer.
struct PdlWait {
  __device__ void operator()() const { pdl_wait(); }
};
// step_in_proj_conv's: first the L2 prefetch of the next layer's weights, once, which the block issues after its own
// weight loads and before it would wait anyway
struct PdlWaitPrefetch {
  const char* pfBase;
  i64 pfBytes, pfStride;
  int pfCount;
  __device__ void operator()() {
    l2_prefetch(L2_PREFETCH_ARGS);
    pfBase = nullptr;
    pdl_wait();
  }
};

template <int CHUNKS = STEP_CHUNKS, int ONE_PASS = STEP_ONE_PASS_LOADS, typename Wait>
__device__ __forceinline__ void in_proj_conv_block(act_t* sIn, int blk, Wait& wait, const float* hidden,
                                                   const float* residualIn, float* residualOut, const int* ids,
                                                   const float* table, const float* __restrict__ normW, float eps,
                                                   const act_t* __restrict__ w, const float* __restrict__ bias,
                                                   act_t* xz, float* convState, i64 stateSeqStride,
                                                   const float* __restrict__ convW, const float* __restrict__ convB,
                                                   act_t* xOut, const act_t* __restrict__ wx, float* partial,
                                                   int batch, int k, int dInner, int dbl) {
  __shared__ float sPre[STEP_GEMV_BATCH][STEP_IN_ROWS * 8];  // x's rows before the conv, then after it
  __shared__ float sScale[STEP_GEMV_BATCH];
  const int rows = STEP_IN_ROWS * (STEP_GEMV_THREADS / 32), row0 = blk * rows;
  static_assert(STEP_GEMV_BATCH * STEP_IN_ROWS * (STEP_GEMV_THREADS / 32) <= STEP_GEMV_THREADS, "a thread a conv");
  const int xRows = max(0, min(rows, dInner - row0));  // this block's channels of x
  // x_proj's weights for this block's channels: a thread a column, loaded before anything else is read
  // (xRows is a multiple of 8: dInner % 8 == 0, ops-step.ts fusedStepFits checks)
  float wxv[STEP_IN_ROWS * 8];
  const int col = threadIdx.x;
#pragma unroll
  for (int u = 0; u < STEP_IN_ROWS; ++u) {
    const bool in = col < dbl && 8 * u < xRows;
    unpack_chunk8(in ? load_chunk8(wx + (i64)col * dInner + row0 + 8 * u) : zero_chunk8(), wxv + 8 * u);
  }

  const auto stage = [&](act_t* s, int b0, int tb) {
    float* out = blk == 0 ? residualOut : nullptr;
    stage_rmsnorm<ONE_PASS>(wait, s, b0, tb, hidden, residualIn, out, ids, table, normW, eps, k, sScale);
  };
  const int n = 2 * dInner, tile = gemv_tile(k);
  for (int b0 = 0; b0 < batch; b0 += tile) {
    const int tb = min(tile, batch - b0);
    const auto store = [&](int b, int o, float t) {
      const float v = act_round(t + (bias ? bias[o] : 0.0f));
      if (o < dInner)
        sPre[b - b0][o - row0] = v;
      else
        act_store(xz + (i64)b * n + o, v);
    };
    // a thread a (sequence, channel) of x's rows (tb · rows ≤ the block's threads): its conv taps, read before the
    // GEMV waits on the previous kernel (this layer's conv state is no kernel's output but this one's, a step ago)
    const int j = threadIdx.x / rows, cl = threadIdx.x % rows, c = row0 + cl, b = b0 + j;
    const bool convs = j < tb && cl < xRows;
    float* st = convState + (i64)b * stateSeqStride + (i64)c * D_CONV;
    ConvTaps taps;
    if (convs) taps = conv_taps(st, convW + c * D_CONV, convB ? convB[c] : 0.0f);
    block_gemv<STEP_IN_ROWS, CHUNKS>(sIn, w, k, n, blk, b0, tb, stage, store);
    if (xRows == 0) continue;  // a block of z's rows only
    __syncthreads();
    if (j < tb) {
      float xv = 0.0f;
      if (convs) {
        xv = act_round(silu_f(conv_shift(st, taps, sPre[j][cl])));
        act_store(xOut + (i64)b * dInner + c, xv);
      }
      sPre[j][cl] = xv;
    }
    __syncthreads();
    if (col < dbl)
      for (int j = 0; j < tb; ++j) {
        float s = 0.0f;
#pragma unroll
        for (int cl = 0; cl < rows; ++cl) s += wxv[cl] * sPre[j][cl];
        partial[((i64)blk * batch + b0 + j) * dbl + col] = s;
      }
  }
}

template <int CHUNKS = STEP_CHUNKS, typename Wait>
__device__ __forceinline__ void out_proj_block(act_t* sIn, int blk, Wait& wait, const act_t* y,
                                               const act_t* __restrict__ w, const float* __restrict__ bias, float* out,
                                               int batch, int k, int n) {
  // y's rows as they are, 8 elements a load; bf16: four loads in flight a thread (f32, the parity path, keeps one at
  // a time: more registers would make step_layers spill)
  const auto stage = [&](act_t* s, int b0, int tb) {
    wait();
    const int chunks = tb * k / 8;
#if ACT_BF16
    for (int q0 = threadIdx.x; q0 < chunks; q0 += 4 * blockDim.x) {
      Vec16 c[4];
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (q0 + u * blockDim.x < chunks) c[u] = ld_cg_chunk8(y + (i64)b0 * k + 8 * (q0 + u * blockDim.x)).v;
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (q0 + u * blockDim.x < chunks) *(Vec16*)(s + 8 * (q0 + u * blockDim.x)) = c[u];
    }
#else
#pragma unroll 4
    for (int q = threadIdx.x; q < chunks; q += blockDim.x) {
      const Chunk8 c = ld_cg_chunk8(y + (i64)b0 * k + 8 * q);
      *(Vec16*)(s + 8 * q) = c.v;
      *(Vec16*)(s + 8 * q + 4) = c.w;
    }
#endif
  };
  const auto store = [&](int b, int o, float t) { out[(i64)b * n + o] = t + (bias ? bias[o] : 0.0f); };
  const int tile = gemv_tile(k);
  for (int b0 = 0; b0 < batch; b0 += tile)
    block_gemv<STEP_OUT_ROWS, CHUNKS>(sIn, w, k, n, blk, b0, min(tile, batch - b0), stage, store);
}

template <typename Wait>
__device__ __forceinline__ void dt_ssm_block(int blk, int b, Wait& wait, const float* partial, int blocks,
                                             const act_t* x, const act_t* z, i64 zStride,
                                             const act_t* __restrict__ wdtT, const float* __restrict__ dtBias,
                                             const float* __restrict__ aLog2, const float* __restrict__ dSkip,
                                             float* ssmState, i64 stateSeqStride, act_t* y, int batch, int dInner,
                                             int dtRank) {
  constexpr int LANES = ssm_step_lanes(), RUN = D_STATE / LANES, PREFETCH = dt_prefetch<LANES>();
  __shared__ float sxd[STEP_DBL_MAX];
  __shared__ float sPart[STEP_GEMV_THREADS];
  const int q = threadIdx.x % LANES;
  const int c = blk * (STEP_GEMV_THREADS / LANES) + threadIdx.x / LANES;
  const bool live = c < dInner;
  const int cc = live ? c : dInner - 1;  // every lane stays for the shuffles and barriers
  float wdt[PREFETCH], h[RUN], a2[RUN];
  load_dt_weights<LANES, PREFETCH>(wdt, wdtT, q, dtRank, dInner, cc);
  float* hp = ssmState + (i64)b * stateSeqStride + (i64)cc * D_STATE + q * RUN;
  load_run<RUN>(hp, h);
  load_run<RUN>(aLog2 + (i64)cc * D_STATE + q * RUN, a2);
  const float bias = dtBias[cc], dSkipC = dSkip[cc];
  wait();  // x, z and the partial sums are the in_proj stage's
  const float xv = ld_cg_act(x + (i64)b * dInner + cc);
  const float zv = q == 0 ? ld_cg_act(z + (i64)b * zStride + cc) : 0.0f;

  // x_dbl: each column split over `parts` threads, then added in part order
  const int dbl = dtRank + 2 * D_STATE, parts = STEP_GEMV_THREADS / dbl;
  const int col = threadIdx.x % dbl, part = threadIdx.x / dbl;
  // STEP_SUM_LOADS loads issued before any is added (added in block order all the same): a load followed by its add
  // waits for it before the next load issues, and 16 L2 round trips in a row cost ~3-8 µs a launch
  float s = 0.0f;
  if (part < parts)
    for (int blk0 = part; blk0 < blocks; blk0 += STEP_SUM_LOADS * parts) {
      float v[STEP_SUM_LOADS];
#pragma unroll
      for (int u = 0; u < STEP_SUM_LOADS; ++u) {
        const int blk = blk0 + u * parts;
        v[u] = blk < blocks ? ld_cg_f32(partial + ((i64)blk * batch + b) * dbl + col) : 0.0f;
      }
#pragma unroll
      for (int u = 0; u < STEP_SUM_LOADS; ++u) s += v[u];
    }
  sPart[threadIdx.x] = s;
  __syncthreads();
  if ((int)threadIdx.x < dbl) {
    float t = 0.0f;
    for (int p = 0; p < parts; ++p) t += sPart[p * dbl + threadIdx.x];
    sxd[threadIdx.x] = act_round(t);
  }
  __syncthreads();

  const auto xd = [&](int i) { return sxd[i]; };
  const float acc = ssm_lane_step<LANES, RUN, PREFETCH>(xd, q, wdt, wdtT, dtRank, dInner, cc, bias, xv, h, a2);
  if (!live) return;
  store_run<RUN>(hp, h);
  if (q == 0) act_store(y + (i64)b * dInner + c, (acc + dSkipC * xv) * silu_f(zv));
}

// Block of 32 in_proj rows (grid: 2·dInner / 32, x's rows first):
//   residualOut = hidden + residualIn (first layer: the token's embedding row); xz = in_proj(RMSNorm(residualOut)·normW) (+ bias), z's rows stored in xz;
//   on x's rows: conv + SiLU → x, then partial[blk, b, j] = Σ over the block's channels of x_proj[j, c]·x[b, c].
// Every block forms the normed rows itself; block 0 also writes the new residual, into the other buffer of a pair,
// since every block reads the old one.
extern "C" __global__ void __launch_bounds__(STEP_GEMV_THREADS)
    step_in_proj_conv(const float* hidden, const float* residualIn,
                      float* __restrict__ residualOut, const int* __restrict__ ids, const float* __restrict__ table,
                      const float* __restrict__ normW, float eps,
                      const act_t* __restrict__ w, const float* __restrict__ bias, act_t* __restrict__ xz,
                      float* __restrict__ convState, i64 stateSeqStride, const float* __restrict__ convW,
                      const float* __restrict__ convB, act_t* __restrict__ xOut, const act_t* __restrict__ wx,
                      float* __restrict__ partial, int batch, int k, int dInner, int dbl, L2_PREFETCH_PARAMS) {
  __shared__ __align__(16) act_t sIn[STEP_SMEM_ELEMS];
  pdl_trigger();
  PdlWaitPrefetch wait{L2_PREFETCH_ARGS};
  in_proj_conv_block(sIn, blockIdx.x, wait, hidden, residualIn, residualOut, ids, table, normW, eps, w, bias, xz,
                     convState, stateSeqStride, convW, convB, xOut, wx, partial, batch, k, dInner, dbl);
}

// out = y · wᵀ (+ bias), f32 [batch, n] (the next block's hidden), for batch ≤ 8 and k % 8 == 0.
extern "C" __global__ void __launch_bounds__(STEP_GEMV_THREADS)
    step_out_proj(const act_t* y, const act_t* __restrict__ w, const float* __restrict__ bias,
                  float* __restrict__ out, int batch, int k, int n) {
  __shared__ __align__(16) act_t sIn[STEP_SMEM_ELEMS];
  pdl_trigger();
  PdlWait wait;
  out_proj_block<STEP_OUT_CHUNKS>(sIn, blockIdx.x, wait, y, w, bias, out, batch, k, n);
}

// Block (one sequence, STEP_GEMV_THREADS / ssm_step_lanes() channels; grid (channel blocks, batch)):
// x_dbl = Σ_blk partial[blk, b] (rounded as the x_proj GEMM's act_t output), summed by all threads in a fixed order;
// then per channel Δ = softplus(dt_proj(dt) + bias), the one-step scan and the gated output, each channel's dt_proj sum
// and state split over its lanes as in step.cu's ssm_step_dt. dt_proj's weight is read transposed ([dtRank, dInner]).
// The weights and the state are loaded before the partial sums, which are the previous kernel's output. (Threads of
// 64 channels × 4 sequences, a channel a thread, left three quarters of the threads idle at batch 1.)
extern "C" __global__ void __launch_bounds__(STEP_GEMV_THREADS)
    step_dt_ssm(const float* partial, int blocks, const act_t* x, const act_t* z, i64 zStride,
                const act_t* __restrict__ wdtT, const float* __restrict__ dtBias, const float* __restrict__ aLog2,
                const float* __restrict__ dSkip, float* __restrict__ ssmState, i64 stateSeqStride,
                act_t* __restrict__ y, int batch, int dInner, int dtRank) {
  pdl_trigger();
  PdlWait wait;
  dt_ssm_block(blockIdx.x, blockIdx.y, wait, partial, blocks, x, z, zStride, wdtT, dtBias, aLog2, dSkip, ssmState,
               stateSeqStride, y, batch, dInner, dtRank);
}

#define HEAD_ROWS 4 // lm_head rows a warp of head_greedy takes per row block

// Greedy decoding's head in one launch, for up to STEP_GEMV_BATCH sequences: out[b] = argmax_o lm_head[o] ·
// RMSNorm_f(hidden[b] + residual[b]), ties to the lower id and NaN never winning (as argmax_rows), without writing
// the logits; nextIds gets the same tokens (the next step's input). Each block stages the normed rows once, then takes
// row blocks blockIdx.x, blockIdx.x + gridDim.x, ...; each warp keeps its best row per sequence, the block's best goes
// to partial [blocks, batch, (value, id bits)], and the last block to arrive (arrival, reset by it) picks among the
// blocks' bests in block order. It replaces final_rmsnorm_rows, the lm_head GEMM and argmax_rows (three launches, and
// the logits' round trip through memory).
extern "C" __global__ void __launch_bounds__(STEP_GEMV_THREADS)
    head_greedy(const float* hidden, const float* residual, const float* __restrict__ normW, float eps,
                const act_t* __restrict__ w, float* __restrict__ partial, u32* __restrict__ arrival,
                int* __restrict__ out, int* __restrict__ nextIds, int batch, int k, int vocab) {
  __shared__ __align__(16) act_t sIn[STEP_SMEM_ELEMS];
  __shared__ float sScale[STEP_GEMV_BATCH];
  __shared__ float sBestV[STEP_GEMV_THREADS / 32][STEP_GEMV_BATCH];
  __shared__ int sBestI[STEP_GEMV_THREADS / 32][STEP_GEMV_BATCH];
  __shared__ bool sLast;
  pdl_trigger();
  constexpr float LOWEST = -3.402823466e38f;
  constexpr int NONE = 0x7fffffff;
  const auto better = [](float v, int i, float bv, int bi) { return v > bv || (v == bv && i < bi); };
  float bestV[STEP_GEMV_BATCH];
  int bestI[STEP_GEMV_BATCH];
#pragma unroll
  for (int j = 0; j < STEP_GEMV_BATCH; ++j) {
    bestV[j] = LOWEST;
    bestI[j] = NONE;
  }
  bool staged = false;
  PdlWait wait;
  const auto stage = [&](act_t* s, int b0, int tb) {
    if (!staged) stage_rmsnorm(wait, s, b0, tb, hidden, residual, nullptr, nullptr, nullptr, normW, eps, k, sScale);
    staged = true;
  };
  // b is 0 + an unrolled constant in block_gemv, so bestV/bestI stay in registers
  const auto keep = [&](int b, int o, float t) {
    if (better(t, o, bestV[b], bestI[b])) {
      bestV[b] = t;
      bestI[b] = o;
    }
  };
  const int rowBlocks = (vocab + HEAD_ROWS * (STEP_GEMV_THREADS / 32) - 1) / (HEAD_ROWS * (STEP_GEMV_THREADS / 32));
  for (int rb = blockIdx.x; rb < rowBlocks; rb += gridDim.x)
    block_gemv<HEAD_ROWS>(sIn, w, k, vocab, rb, 0, batch, stage, keep);

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0)
#pragma unroll
    for (int j = 0; j < STEP_GEMV_BATCH; ++j) {
      sBestV[warp][j] = bestV[j];
      sBestI[warp][j] = bestI[j];
    }
  __syncthreads();
  if ((int)threadIdx.x < batch) {
    const int j = threadIdx.x;
    float bv = LOWEST;
    int bi = NONE;
    for (int wp = 0; wp < STEP_GEMV_THREADS / 32; ++wp)
      if (better(sBestV[wp][j], sBestI[wp][j], bv, bi)) {
        bv = sBestV[wp][j];
        bi = sBestI[wp][j];
      }
    partial[2 * (blockIdx.x * batch + j)] = bv;
    partial[2 * (blockIdx.x * batch + j) + 1] = __uint_as_float((u32)bi);
  }
  __threadfence();  // the block's best is visible before it counts as arrived
  __syncthreads();
  if (threadIdx.x == 0) sLast = atomicAdd(arrival, 1u) == gridDim.x - 1;
  __syncthreads();
  if (!sLast) return;
  __threadfence();
  if ((int)threadIdx.x < batch) {
    const int j = threadIdx.x;
    float bv = LOWEST;
    int bi = NONE;
    // the blocks' bests loaded STEP_SUM_LOADS at a time before any is compared (as dt_ssm_block's sums)
    for (int blk0 = 0; blk0 < (int)gridDim.x; blk0 += STEP_SUM_LOADS) {
      float v[STEP_SUM_LOADS], iv[STEP_SUM_LOADS];
#pragma unroll
      for (int u = 0; u < STEP_SUM_LOADS; ++u) {
        const bool in = blk0 + u < (int)gridDim.x;
        v[u] = in ? ld_cg_f32(partial + 2 * ((blk0 + u) * batch + j)) : LOWEST;
        iv[u] = in ? ld_cg_f32(partial + 2 * ((blk0 + u) * batch + j) + 1) : __uint_as_float((u32)NONE);
      }
#pragma unroll
      for (int u = 0; u < STEP_SUM_LOADS; ++u) {
        const int i = (int)__float_as_uint(iv[u]);
        if (better(v[u], i, bv, bi)) {
          bv = v[u];
          bi = i;
        }
      }
    }
    out[j] = nextIds[j] = bi == NONE ? 0 : bi;
  }
  if (threadIdx.x == 0) *arrival = 0;
}
#endif  // DECISERVE_STEP_FUSED_CU
