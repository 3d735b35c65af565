// A CPU stand-in for the CUDA execution model, just enough to run kernels/*.cu on the host for the no-GPU tests:
// each block's threads are cooperative fibers (ucontext) that switch only at __syncthreads() and at warp collectives
// (__shfl_xor_sync, __ballot_sync, __match_any_sync), which the scheduler resolves once every live lane has arrived.
// Blocks run one after another, so __shared__ (a static here) is per block, and atomics need no locking. The
// statics share one section, which the scheduler fills with 0xFF bytes (NaN as f32 and as bf16) before each block, as
// a GPU leaves shared memory unset: a read of what the block did not write sees NaN, not zero or a previous block's.
// It checks orchestration (strides, offsets, tables, launch shapes) and kernel logic; it cannot see GPU races.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ static inline  // internal, so statics in it share the plain __shared__ section (no COMDAT group)
#define __launch_bounds__(...)
#define __shared__ static __attribute__((section("emu_shared")))
#define __align__(n) __attribute__((aligned(n)))

struct EmuDim {
  unsigned x, y, z;
};

extern EmuDim emu_blockIdx, emu_blockDim, emu_gridDim;
const EmuDim& emu_thread_idx();
#define threadIdx (emu_thread_idx())
#define blockIdx emu_blockIdx
#define blockDim emu_blockDim
#define gridDim emu_gridDim

enum EmuWarpOp { EMU_SHFL_XOR = 1, EMU_BALLOT = 2, EMU_MATCH_ANY = 3, EMU_SHFL_UP = 4, EMU_SHFL_IDX = 5 };
void __syncthreads();
inline void __threadfence() {}  // blocks run one after another
void emu_prefetch_l2(const void* p, uint64_t bytes);  // prelude.cuh l2_prefetch: the range must be device memory
uint64_t emu_warp_op(int op, uint64_t value, int arg);

// every shuffle moves the value's bits through the fiber scheduler's warp exchange
template <typename T>
inline T emu_shfl(int op, T v, int arg) {
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  bits = emu_warp_op(op, bits, arg);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int laneMask) { return emu_shfl(EMU_SHFL_XOR, v, laneMask); }
template <typename T>
inline T __shfl_up_sync(unsigned, T v, unsigned delta) { return emu_shfl(EMU_SHFL_UP, v, (int)delta); }
template <typename T>
inline T __shfl_sync(unsigned, T v, int srcLane) { return emu_shfl(EMU_SHFL_IDX, v, srcLane & 31); }
inline unsigned __ballot_sync(unsigned, bool p) { return (unsigned)emu_warp_op(EMU_BALLOT, p ? 1u : 0u, 0); }
inline unsigned __match_any_sync(unsigned, unsigned v) { return (unsigned)emu_warp_op(EMU_MATCH_ANY, v, 0); }
inline int __popc(unsigned v) { return __builtin_popcount(v); }
inline int __ffs(unsigned v) { return __builtin_ffs((int)v); }
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline unsigned __float_as_uint(float f) {
  unsigned u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline long long __double_as_longlong(double d) {
  long long u;
  std::memcpy(&u, &d, 8);
  return u;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned atomicAdd(unsigned* p, unsigned v) {
  const unsigned old = *p;
  *p = old + v;
  return old;
}
inline int atomicOr(int* p, int v) {
  const int old = *p;
  *p = old | v;
  return old;
}
