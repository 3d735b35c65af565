// The fake driver's block scheduler: each CUDA thread of a block is a fiber on one host thread, switching at
// __syncthreads and at warp collectives (shuffles, votes), which are resolved once every lane of the warp has arrived.
// Linked into libfakecuda.so with fake-cuda.cpp (driver) and fake-nvrtc-cublas.cpp; the kernels call in from their
// own libraries.
#include <ucontext.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "cuda-emu.hpp"
#include "fake-cuda.hpp"

// ---------------------------------------------------------------------------------------------- fiber scheduler
// Fibers switch with a few instructions of assembly on x86-64 (ucontext's swapcontext makes a signal-mask system call
// per switch, which dominated run time); other machines fall back to ucontext.
namespace {
enum ThreadState { ST_RUN, ST_BARRIER, ST_WARP, ST_DONE };
#if defined(__x86_64__)
struct FiberContext {
  void* sp;
};
#else
using FiberContext = ucontext_t;
#endif
struct EmuThread {
  FiberContext ctx;
  EmuDim tid;
  int state;
  int op;
  int arg;
  uint64_t in, out;
};
constexpr size_t kStackBytes = 64 * 1024;
std::vector<EmuThread> g_threads;
std::vector<char> g_stacks;
FiberContext g_sched;
EmuThread* g_cur = nullptr;
const std::function<void()>* g_body = nullptr;

#if defined(__x86_64__)
extern "C" void emu_switch(void** save_sp, void* load_sp);
asm(R"(
.text
.globl emu_switch
.type emu_switch,@function
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
.size emu_switch, .-emu_switch
)");

[[noreturn]] void fiber_start() {
  (*g_body)();
  g_cur->state = ST_DONE;
  emu_switch(&g_cur->ctx.sp, g_sched.sp);
  __builtin_unreachable();
}

void fiber_init(EmuThread& t, char* stack) {
  uintptr_t top = ((uintptr_t)(stack + kStackBytes)) & ~(uintptr_t)15;
  void** slot = (void**)(top - 16);  // return address of the first switch: 16-aligned, so fiber_start sees rsp%16 == 8
  slot[0] = (void*)&fiber_start;
  slot[1] = nullptr;
  void** sp = slot - 6;  // the six callee-saved registers emu_switch pops
  for (int i = 0; i < 6; ++i) sp[i] = nullptr;
  t.ctx.sp = sp;
}
inline void to_fiber(EmuThread& t) { emu_switch(&g_sched.sp, t.ctx.sp); }
inline void to_scheduler() { emu_switch(&g_cur->ctx.sp, g_sched.sp); }
#else
void fiber_entry() {
  (*g_body)();
  g_cur->state = ST_DONE;
}
void fiber_init(EmuThread& t, char* stack) {
  getcontext(&t.ctx);
  t.ctx.uc_stack.ss_sp = stack;
  t.ctx.uc_stack.ss_size = kStackBytes;
  t.ctx.uc_link = &g_sched;
  makecontext(&t.ctx, fiber_entry, 0);
}
inline void to_fiber(EmuThread& t) { swapcontext(&g_sched, &t.ctx); }
inline void to_scheduler() { swapcontext(&g_cur->ctx, &g_sched); }
#endif

[[noreturn]] void emu_fail(const char* what) {
  std::fprintf(stderr, "cuda emulator: %s (block %u,%u,%u)\n", what, emu_blockIdx.x, emu_blockIdx.y, emu_blockIdx.z);
  std::abort();
}

void resolve_warp(size_t first, size_t last) {
  int op = 0;
  for (size_t i = first; i < last; ++i) {
    if (g_threads[i].state != ST_WARP) continue;
    if (op != 0 && g_threads[i].op != op) emu_fail("lanes of one warp are at different warp collectives");
    op = g_threads[i].op;
  }
  for (size_t i = first; i < last; ++i) {
    EmuThread& t = g_threads[i];
    if (t.state != ST_WARP) continue;
    const size_t lane = i - first;
    if (op == EMU_SHFL_XOR || op == EMU_SHFL_UP || op == EMU_SHFL_IDX) {
      // as on the GPU: a source lane below 0 (shfl_up) or outside the warp gives the caller its own value
      const long srcLane = op == EMU_SHFL_XOR ? (long)(lane ^ (size_t)t.arg) : op == EMU_SHFL_UP ? (long)lane - t.arg : t.arg;
      const size_t src = first + (size_t)srcLane;
      t.out = (srcLane >= 0 && src < last && g_threads[src].state == ST_WARP) ? g_threads[src].in : t.in;
    } else {
      uint64_t mask = 0;
      for (size_t j = first; j < last; ++j) {
        const EmuThread& u = g_threads[j];
        if (u.state != ST_WARP) continue;
        if (op == EMU_BALLOT ? u.in != 0 : u.in == t.in) mask |= 1ull << (j - first);
      }
      t.out = mask;
    }
  }
  for (size_t i = first; i < last; ++i)
    if (g_threads[i].state == ST_WARP) g_threads[i].state = ST_RUN;
}

void run_block(size_t n) {
  for (size_t i = 0; i < n; ++i) {
    EmuThread& t = g_threads[i];
    t.tid = {(unsigned)(i % emu_blockDim.x), (unsigned)((i / emu_blockDim.x) % emu_blockDim.y),
             (unsigned)(i / ((size_t)emu_blockDim.x * emu_blockDim.y))};
    fiber_init(t, g_stacks.data() + i * kStackBytes);
    t.state = ST_RUN;
  }
  for (;;) {
    for (size_t i = 0; i < n; ++i) {
      if (g_threads[i].state != ST_RUN) continue;
      g_cur = &g_threads[i];
      to_fiber(g_threads[i]);
    }
    bool resolved = false;
    for (size_t w = 0; w < n; w += 32) {
      const size_t last = w + 32 < n ? w + 32 : n;
      size_t live = 0, atWarp = 0;
      for (size_t i = w; i < last; ++i) {
        if (g_threads[i].state != ST_DONE) ++live;
        if (g_threads[i].state == ST_WARP) ++atWarp;
      }
      if (live > 0 && atWarp == live) {
        resolve_warp(w, last);
        resolved = true;
      }
    }
    if (resolved) continue;
    size_t live = 0, atBarrier = 0;
    for (size_t i = 0; i < n; ++i) {
      if (g_threads[i].state != ST_DONE) ++live;
      if (g_threads[i].state == ST_BARRIER) ++atBarrier;
    }
    if (live == 0) return;
    if (atBarrier != live) emu_fail("deadlock: some threads wait at __syncthreads, others at a warp collective");
    for (size_t i = 0; i < n; ++i)
      if (g_threads[i].state == ST_BARRIER) g_threads[i].state = ST_RUN;
  }
}
}  // namespace

EmuDim emu_blockIdx, emu_blockDim, emu_gridDim;
const EmuDim& emu_thread_idx() { return g_cur->tid; }

void __syncthreads() {
  g_cur->state = ST_BARRIER;
  to_scheduler();
}

uint64_t emu_warp_op(int op, uint64_t value, int arg) {
  g_cur->state = ST_WARP;
  g_cur->op = op;
  g_cur->in = value;
  g_cur->arg = arg;
  to_scheduler();
  return g_cur->out;
}

void emu_run_grid(EmuDim grid, EmuDim block, const std::function<void()>& body, void (*beforeBlock)()) {
  const size_t n = (size_t)block.x * block.y * block.z;
  if (n == 0 || n > 1024) emu_fail("block size must be 1..1024 threads");
  if (g_threads.size() < n) {
    g_threads.resize(n);
    g_stacks.assign(n * kStackBytes, 0);
  }
  g_body = &body;
  emu_gridDim = grid;
  emu_blockDim = block;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) {
        emu_blockIdx = {x, y, z};
        if (beforeBlock) beforeBlock();
        run_block(n);
      }
}
