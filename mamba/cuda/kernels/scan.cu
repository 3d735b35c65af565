// The selective scan, h_t = exp(Δ_t·A) ⊙ h_{t−1} + Δ_t·B_t·x_t,  y_t = (C_t·h_t + D ⊙ x_t) ⊙ SiLU(z_t),
// as a two-pass chunked scan so that long sequences keep the GPU full: time is cut into chunks (never crossing a
// sequence), and the work is parallel over (chunk, channel) with each thread's D_STATE states in registers.
//   1. scan_chunk_state:  each chunk scanned from h = 0 → its local end state, and ΣΔ over the chunk
//                         (the chunk's decay is exp(A·ΣΔ), exactly Π exp(Δ_t·A)); given dt_proj's bias, it reads
//                         the raw dt, forms Δ = softplus(dt + bias) and writes Δ in its place (no dt_softplus pass);
//   2. scan_carry:        per (sequence, channel, state), walk the chunks in order: h_start(k) = carry,
//                         carry = exp(A·ΣΔ_k)·carry + h_end_local(k); the final carry is the ssm state;
//   3. scan_chunk_output: each chunk rescanned from its true h_start, writing y.
// A is passed as aLog2 = −exp(A_log)·log2(e), so exp(Δ·A) = exp2(Δ·aLog2) (one MUFU.EX2).
// Rows of x/Δ/z/B/C are addressed with explicit strides, so the scan reads x and z straight out of xz / x_dbl, or
// out of the compacted buffers after DeciMamba's gather.
#include "prelude.cuh"

#define SCAN_THREADS 128  // channels per block
#define SCAN_TILE 32      // time steps of B (and C) staged in shared memory at a time

// Passes 1 and 3 scan the same (chunk, channel) with the channel's A row in registers: which one this thread has.
struct ChunkLane {
  int c, start, len;
  bool active;  // c < dInner: an inactive thread still helps stage B/C and meets every __syncthreads
};
__device__ __forceinline__ ChunkLane chunk_lane(const int* chunkStart, const int* chunkLen, const float* aLog2, int dInner,
                                                float (&a)[D_STATE]) {
  const int chunk = blockIdx.x;
  ChunkLane lane;
  lane.c = blockIdx.y * SCAN_THREADS + threadIdx.x;
  lane.active = lane.c < dInner;
  lane.start = chunkStart[chunk];
  lane.len = chunkLen[chunk];
#pragma unroll
  for (int n = 0; n < D_STATE; ++n) a[n] = lane.active ? aLog2[lane.c * D_STATE + n] : 0.0f;
  return lane;
}

// One step's per-channel operands, loaded a step ahead of their use: each step's loads would otherwise wait out a
// DRAM round trip with only the exp work of the other warps to hide it. Past `end` nothing is read.
struct StepLoads {
  float dt, x, z;
};
__device__ __forceinline__ StepLoads step_loads(const act_t* x, i64 xStride, const float* delta, i64 deltaStride,
                                                const act_t* z, i64 zStride, i64 row, i64 end) {
  if (row >= end) return StepLoads{0.0f, 0.0f, 0.0f};
  return StepLoads{delta[row * deltaStride], act_load(x + row * xStride), z ? act_load(z + row * zStride) : 0.0f};
}

// A step's row of B (or C) from the shared tile into registers, 16 bytes a load where D_STATE allows: one load per
// state kept the load/store unit as busy as the exp unit.
__device__ __forceinline__ void tile_row(const float* row, float (&v)[D_STATE]) {
#if D_STATE % 4 == 0
#pragma unroll
  for (int q = 0; q < D_STATE / 4; ++q) {
    const F32x4 w = reinterpret_cast<const F32x4*>(row)[q];
    v[4 * q] = w.a;
    v[4 * q + 1] = w.b;
    v[4 * q + 2] = w.c;
    v[4 * q + 3] = w.d;
  }
#else
#pragma unroll
  for (int n = 0; n < D_STATE; ++n) v[n] = row[n];
#endif
}

extern "C" __global__ void __launch_bounds__(SCAN_THREADS)
scan_chunk_state(const act_t* __restrict__ x, i64 xStride, float* __restrict__ delta, i64 deltaStride,
                 const float* __restrict__ dtBias, const act_t* __restrict__ bMat, i64 bStride,
                 const float* __restrict__ aLog2,
                 const int* __restrict__ chunkStart, const int* __restrict__ chunkLen,
                 float* __restrict__ chunkH, float* __restrict__ chunkDeltaSum, int dInner) {
  __shared__ __align__(16) float sB[SCAN_TILE][D_STATE];
  const int chunk = blockIdx.x;
  float a[D_STATE], h[D_STATE];
  const auto [c, start, len, active] = chunk_lane(chunkStart, chunkLen, aLog2, dInner, a);
#pragma unroll
  for (int n = 0; n < D_STATE; ++n) h[n] = 0.0f;
  double deltaSum = 0.0;  // in double: ΣΔ over a chunk sets the carried decay, so its rounding must stay tiny
  const int cc = active ? c : 0;
  const float bias = dtBias ? dtBias[cc] : 0.0f;
  StepLoads next = step_loads(x + cc, xStride, delta + cc, deltaStride, nullptr, 0, start, start + len);
  for (int t0 = 0; t0 < len; t0 += SCAN_TILE) {
    const int tl = min(SCAN_TILE, len - t0);
    __syncthreads();
    for (int i = threadIdx.x; i < tl * D_STATE; i += SCAN_THREADS) {
      sB[i / D_STATE][i % D_STATE] = act_load(bMat + (i64)(start + t0 + i / D_STATE) * bStride + i % D_STATE);
    }
    __syncthreads();
    if (active) {
      for (int tt = 0; tt < tl; ++tt) {
        const i64 row = start + t0 + tt;
        const StepLoads cur = next;
        next = step_loads(x + c, xStride, delta + c, deltaStride, nullptr, 0, row + 1, start + len);
        float dt = cur.dt;
        if (dtBias) {  // delta holds dt_proj's raw output: Δ is formed here and written back for pass 3
          dt = softplus_f(dt + bias);
          delta[row * deltaStride + c] = dt;
        }
        const float dx = dt * cur.x;
        deltaSum += dt;
        float bv[D_STATE];
        tile_row(sB[tt], bv);
#pragma unroll
        for (int n = 0; n < D_STATE; ++n) h[n] = scan_decay(n, dt * a[n]) * h[n] + dx * bv[n];
      }
    }
  }
  if (!active) return;
  float* out = chunkH + ((i64)chunk * dInner + c) * D_STATE;
#pragma unroll
  for (int n = 0; n < D_STATE; ++n) out[n] = h[n];
  chunkDeltaSum[(i64)chunk * dInner + c] = (float)deltaSum;
}

// One thread per (sequence, channel, state). chunkH holds local end states on entry and true start states on exit.
// h0 (nullable): the carried ssm state per sequence; hOut: the state after each sequence's last row.
extern "C" __global__ void scan_carry(const int* __restrict__ seqFirstChunk, float* __restrict__ chunkH,
                                      const float* __restrict__ chunkDeltaSum, const float* __restrict__ aLog2,
                                      const float* __restrict__ h0, i64 h0SeqStride, float* __restrict__ hOut,
                                      i64 hOutSeqStride, int nSeq, int dInner) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  const i64 perSeq = (i64)dInner * D_STATE;
  if (i >= nSeq * perSeq) return;
  const int s = (int)(i / perSeq);
  const int cn = (int)(i % perSeq);
  const int c = cn / D_STATE;
  const float a = aLog2[cn];
  float h = h0 ? h0[(i64)s * h0SeqStride + cn] : 0.0f;
  const int k1 = seqFirstChunk[s + 1];
  // CARRY_BATCH chunks' inputs are read before any is written: the walk is one dependent chain, and reading one chunk
  // at a time left each step waiting out a global load (the device breakdown had this kernel at 11% of a 32K prefill).
  // 8 at a time was 29 round trips for 130m's 228 chunks at 32K, still 2.5 ms of 44; 16 is 15 at 96 registers (32
  // kept 64 addresses live: 168).
  constexpr int CARRY_BATCH = 16;
  for (int k0 = seqFirstChunk[s]; k0 < k1; k0 += CARRY_BATCH) {
    float local[CARRY_BATCH], decay[CARRY_BATCH];
#pragma unroll
    for (int j = 0; j < CARRY_BATCH; ++j) {
      const int k = min(k0 + j, k1 - 1);
      local[j] = chunkH[(i64)k * perSeq + cn];
      decay[j] = decay_exp2(chunkDeltaSum[(i64)k * dInner + c] * a);
    }
#pragma unroll
    for (int j = 0; j < CARRY_BATCH; ++j) {
      if (k0 + j >= k1) break;
      chunkH[(i64)(k0 + j) * perSeq + cn] = h;
      h = decay[j] * h + local[j];
    }
  }
  hOut[(i64)s * hOutSeqStride + cn] = h;
}

extern "C" __global__ void __launch_bounds__(SCAN_THREADS)
scan_chunk_output(const act_t* __restrict__ x, i64 xStride, const float* __restrict__ delta, i64 deltaStride,
                  const act_t* __restrict__ z, i64 zStride, const act_t* __restrict__ bMat, i64 bStride,
                  const act_t* __restrict__ cMat, i64 cStride, const float* __restrict__ aLog2, const float* __restrict__ dSkip,
                  const int* __restrict__ chunkStart, const int* __restrict__ chunkLen, const float* __restrict__ chunkH,
                  act_t* __restrict__ y, i64 yStride, int dInner) {
  __shared__ __align__(16) float sB[SCAN_TILE][D_STATE];
  __shared__ __align__(16) float sC[SCAN_TILE][D_STATE];
  const int chunk = blockIdx.x;
  float a[D_STATE], h[D_STATE];
  const auto [c, start, len, active] = chunk_lane(chunkStart, chunkLen, aLog2, dInner, a);
  const int cc = active ? c : 0;
  const float* hStart = chunkH + ((i64)chunk * dInner + cc) * D_STATE;
#pragma unroll
  for (int n = 0; n < D_STATE; ++n) h[n] = active ? hStart[n] : 0.0f;
  const float dc = active ? dSkip[c] : 0.0f;
  StepLoads next = step_loads(x + cc, xStride, delta + cc, deltaStride, z + cc, zStride, start, start + len);
  for (int t0 = 0; t0 < len; t0 += SCAN_TILE) {
    const int tl = min(SCAN_TILE, len - t0);
    __syncthreads();
    for (int i = threadIdx.x; i < tl * D_STATE; i += SCAN_THREADS) {
      const i64 row = start + t0 + i / D_STATE;
      sB[i / D_STATE][i % D_STATE] = act_load(bMat + row * bStride + i % D_STATE);
      sC[i / D_STATE][i % D_STATE] = act_load(cMat + row * cStride + i % D_STATE);
    }
    __syncthreads();
    if (active) {
      for (int tt = 0; tt < tl; ++tt) {
        const i64 row = start + t0 + tt;
        const StepLoads cur = next;
        next = step_loads(x + c, xStride, delta + c, deltaStride, z + c, zStride, row + 1, start + len);
        const float dx = cur.dt * cur.x;
        float bv[D_STATE], cv[D_STATE];
        tile_row(sB[tt], bv);
        tile_row(sC[tt], cv);
        float acc = 0.0f;
#pragma unroll
        for (int n = 0; n < D_STATE; ++n) {
          h[n] = scan_decay(n, cur.dt * a[n]) * h[n] + dx * bv[n];
          acc += cv[n] * h[n];
        }
        act_store(y + row * yStride + c, (acc + dc * cur.x) * silu_f(cur.z));
      }
    }
  }
}

// Pass 2 with more threads (engine option scanCarry: 'segmented'): scan_carry gives each (sequence, channel, state)
// one thread that walks every chunk, 24,576 threads at 130m batch 1 (ncu: 12% occupancy, an instruction every 14
// cycles). Here the chunks are cut into CARRY_SEGMENTS segments, one warp each over CARRY_LANES consecutive
// (channel, state) pairs: each lane composes its segment's chunks into one map h ↦ A·h + B, the maps of the segments
// before it give its start state (through shared memory), and it walks the segment again writing each chunk's start.
#define CARRY_LANES 32
#define CARRY_SEGMENTS 8
extern "C" __global__ void __launch_bounds__(CARRY_LANES* CARRY_SEGMENTS)
scan_carry_segmented(const int* __restrict__ seqFirstChunk, float* __restrict__ chunkH,
                     const float* __restrict__ chunkDeltaSum, const float* __restrict__ aLog2,
                     const float* __restrict__ h0, i64 h0SeqStride, float* __restrict__ hOut, i64 hOutSeqStride,
                     int nSeq, int dInner) {
  __shared__ float sA[CARRY_SEGMENTS][CARRY_LANES], sB[CARRY_SEGMENTS][CARRY_LANES];
  const int s = blockIdx.y, lane = threadIdx.x % CARRY_LANES, seg = threadIdx.x / CARRY_LANES;
  const i64 perSeq = (i64)dInner * D_STATE;
  const i64 cn = (i64)blockIdx.x * CARRY_LANES + lane;
  const bool active = cn < perSeq;
  const int c = active ? (int)(cn / D_STATE) : 0;
  const float a = active ? aLog2[cn] : 0.0f;
  const int k0 = seqFirstChunk[s], n = seqFirstChunk[s + 1] - k0;
  const int per = (n + CARRY_SEGMENTS - 1) / CARRY_SEGMENTS;
  const int kb = k0 + min(n, seg * per), ke = k0 + min(n, (seg + 1) * per);
  float A = 1.0f, B = 0.0f;
  if (active) {
#pragma unroll 4
    for (int k = kb; k < ke; ++k) {
      const float d = decay_exp2(chunkDeltaSum[(i64)k * dInner + c] * a);
      B = d * B + chunkH[(i64)k * perSeq + cn];
      A *= d;
    }
  }
  sA[seg][lane] = A;
  sB[seg][lane] = B;
  __syncthreads();
  if (!active) return;
  float h = h0 ? h0[(i64)s * h0SeqStride + cn] : 0.0f;
  for (int j = 0; j < seg; ++j) h = sA[j][lane] * h + sB[j][lane];
#pragma unroll 4
  for (int k = kb; k < ke; ++k) {
    const float local = chunkH[(i64)k * perSeq + cn];
    const float d = decay_exp2(chunkDeltaSum[(i64)k * dInner + c] * a);
    chunkH[(i64)k * perSeq + cn] = h;
    h = d * h + local;
  }
  if (seg == CARRY_SEGMENTS - 1) hOut[(i64)s * hOutSeqStride + cn] = h;  // the segments before it cover every chunk
}
