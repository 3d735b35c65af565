// Causal depthwise conv1d (kernel D_CONV, bias) + SiLU over a packed batch of sequences, and the conv state.
// Sequences are packed back to back; seqStart[s]..seqStart[s+1] are sequence s's rows, rowSeq[r] is row r's sequence.
// Inputs before a sequence's first row come from initState (the carried conv state, [D, D_CONV] oldest first) or are 0.
#include "prelude.cuh"

#define CONV_ROWS 32  // rows per thread: the window slides in registers, so each input is read once

__device__ __forceinline__ float conv_input(const act_t* __restrict__ x, i64 xStride, int rowOfT0, int p, int c,
                                            const float* __restrict__ init, i64 initSeqStride, int s) {
  if (p >= 0) return act_load(x + (i64)(rowOfT0 + p) * xStride + c);
  return init ? init[(i64)s * initSeqStride + (i64)c * D_CONV + D_CONV + p] : 0.0f;
}

// x: the pre-conv x (xz's first d_inner columns, row stride xStride). out: [rows, dInner].
extern "C" __global__ void conv1d_silu(const act_t* __restrict__ x, i64 xStride, const float* __restrict__ weight,
                                       const float* __restrict__ bias, const int* __restrict__ rowSeq,
                                       const int* __restrict__ seqStart, const float* __restrict__ initState, i64 initSeqStride,
                                       act_t* __restrict__ out, int rows, int dInner) {
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  if (c >= dInner) return;
  const int r0 = blockIdx.x * CONV_ROWS;
  const int r1 = min(rows, r0 + CONV_ROWS);
  float w[D_CONV];
#pragma unroll
  for (int k = 0; k < D_CONV; ++k) w[k] = weight[c * D_CONV + k];
  const float b = bias ? bias[c] : 0.0f;
  float win[D_CONV];  // win[k] = input(t - (D_CONV-1) + k)
  int seq = -1;
  for (int r = r0; r < r1; ++r) {
    const int s = rowSeq[r];
    const int start = seqStart[s];
    const int t = r - start;
    if (s != seq) {  // first row of this thread's tile, or a new sequence: load the inputs before t
      seq = s;
#pragma unroll
      for (int k = 0; k < D_CONV - 1; ++k) win[k] = conv_input(x, xStride, start, t - (D_CONV - 1) + k, c, initState, initSeqStride, s);
    } else {
#pragma unroll
      for (int k = 0; k < D_CONV - 1; ++k) win[k] = win[k + 1];
    }
    win[D_CONV - 1] = act_load(x + (i64)r * xStride + c);
    float acc = b;
#pragma unroll
    for (int k = 0; k < D_CONV; ++k) acc += w[k] * win[k];
    act_store(out + (i64)r * dInner + c, silu_f(acc));
  }
}

// The conv state after each sequence: its last D_CONV pre-conv inputs, oldest first ([D, D_CONV] per sequence);
// shorter sequences are left-padded from the carried state (zeros for a fresh one).
extern "C" __global__ void conv_state_capture(const act_t* __restrict__ x, i64 xStride, const int* __restrict__ seqStart,
                                              const float* __restrict__ initState, i64 initSeqStride,
                                              float* __restrict__ stateOut, i64 outSeqStride, int nSeq, int dInner) {
  const i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= (i64)nSeq * dInner) return;
  const int s = (int)(i / dInner), c = (int)(i % dInner);
  const int start = seqStart[s], len = seqStart[s + 1] - start;
#pragma unroll
  for (int k = 0; k < D_CONV; ++k) {
    stateOut[(i64)s * outSeqStride + (i64)c * D_CONV + k] = conv_input(x, xStride, start, len - D_CONV + k, c, initState, initSeqStride, s);
  }
}
