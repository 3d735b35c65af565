// DeciMamba (official "max_p"): score each context token by ‖Δ_t‖₂ over channels, keep the K highest (ties to the
// earlier index) plus the protected tail, in time order, and gather the surviving rows.
// Per-sequence parameters come from the host's plan (K depends only on lengths, so every shape is known up front).
#include "prelude.cuh"

#define SELECT_THREADS 1024
#define NAN_KEY 0x000fffffffffffffull  // the key of −∞: NaN scores rank last, tied with −∞, as in selectKept()

// scores[row] = ‖Δ_row‖₂ in double (the reference sums in double too), for rows t < contextLen[seq] of the sequences
// that decimate here (contextLen 0 for the others). One warp per row. bias (nullable): `delta` holds dt_proj's raw
// output and Δ = softplus(dt + bias) is formed here (the fused scan path, which never writes Δ).
extern "C" __global__ void delta_score(const float* __restrict__ delta, i64 deltaStride, const float* __restrict__ bias,
                                       const int* __restrict__ rowSeq,
                                       const int* __restrict__ seqStart, const int* __restrict__ contextLen,
                                       double* __restrict__ scores, int rows, int dInner) {
  const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  const int s = rowSeq[row];
  if (row - seqStart[s] >= contextLen[s]) return;
  const float* d = delta + (i64)row * deltaStride;
  double sumSq = 0.0;
  for (int c = lane; c < dInner; c += 32) {
    const double v = bias ? softplus_f(d[c] + bias[c]) : d[c];
    sumSq += v * v;
  }
  sumSq = warp_sum_d(sumSq);
  if (lane == 0) scores[row] = sqrt(sumSq);
}

// Order-preserving map of a double to u64 (larger score → larger key).
__device__ __forceinline__ u64 score_key(double s) {
  if (s != s) return NAN_KEY;
  const u64 u = (u64)__double_as_longlong(s);
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

// One block per sequence. Writes srcRow[newStart[s] + j]: the old-layout row of the j-th surviving row of sequence s.
// keep[s] = K when the sequence drops tokens here, −1 when it keeps every row (not decimating, or K = Lc).
// The K-th largest key is found by an 8-pass radix select (8 bits a pass); keys equal to it are taken in index order,
// so ties go to the earlier token; a block-wide prefix count then writes the kept rows already in ascending order.
// status bit 1 is raised if a sequence did not come out with exactly K + tail rows (a bug, checked by the host).
extern "C" __global__ void __launch_bounds__(SELECT_THREADS)
decimate_select(const double* __restrict__ scores, const int* __restrict__ seqStart, const int* __restrict__ contextLen,
                const int* __restrict__ keep, const int* __restrict__ newStart, int* __restrict__ srcRow,
                int* __restrict__ status) {
  __shared__ u32 hist[256];
  __shared__ u64 sPrefix;
  __shared__ int sRemain;
  const int s = blockIdx.x;
  const int oldStart = seqStart[s], len = seqStart[s + 1] - oldStart;
  const int out0 = newStart[s];
  const int k = keep[s];
  if (k < 0) {
    for (int t = threadIdx.x; t < len; t += blockDim.x) srcRow[out0 + t] = oldStart + t;
    return;
  }
  const int lc = contextLen[s];
  const double* sc = scores + oldStart;
  const int lane = threadIdx.x & 31;
  const int span = (lc + blockDim.x - 1) / blockDim.x * blockDim.x;  // whole warps in every pass, for the warp votes
  u64 prefix = 0, mask = 0;
  int remain = k;
  for (int shift = 56; shift >= 0; shift -= 8) {
    for (int i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
    __syncthreads();
    for (int t = threadIdx.x; t < span; t += blockDim.x) {
      u32 digit = 256;  // "no vote"
      if (t < lc) {
        const u64 key = score_key(sc[t]);
        if ((key & mask) == prefix) digit = (u32)((key >> shift) & 255u);
      }
      // warp-aggregated increments: one shared atomic per distinct digit per warp (scores cluster in few digits)
      const u32 peers = __match_any_sync(0xffffffffu, digit);
      if (digit < 256 && (__ffs(peers) - 1) == lane) atomicAdd(&hist[digit], (u32)__popc(peers));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      u32 above = 0;
      for (int d = 255; d >= 0; --d) {
        const u32 count = hist[d];
        if (above + count >= (u32)remain) {
          sPrefix = prefix | ((u64)d << shift);
          sRemain = remain - (int)above;
          break;
        }
        above += count;
      }
    }
    __syncthreads();
    prefix = sPrefix;
    remain = sRemain;
    mask |= 0xffull << shift;
  }
  // prefix is now the K-th largest key; `remain` of the tokens with exactly that key are kept, the earliest ones.
  int keptBefore = 0, tiesBefore = 0;
  for (int base = 0; base < span; base += blockDim.x) {
    const int t = base + threadIdx.x;
    const u64 key = t < lc ? score_key(sc[t]) : 0;
    const bool tie = t < lc && key == prefix;
    int tieTotal, keptTotal;
    const int tieRank = tiesBefore + block_exclusive_count(tie, &tieTotal);
    const bool kept = t < lc && (key > prefix || (tie && tieRank < remain));
    const int pos = keptBefore + block_exclusive_count(kept, &keptTotal);
    if (kept) srcRow[out0 + pos] = oldStart + t;
    tiesBefore += tieTotal;
    keptBefore += keptTotal;
  }
  const int tail = len - lc;
  for (int p = threadIdx.x; p < tail; p += blockDim.x) srcRow[out0 + k + p] = oldStart + lc + p;
  if (threadIdx.x == 0 && keptBefore != k) atomicOr(status, 1);
}
