// A fake libcuda + libnvrtc + libcublas for the no-GPU tests: "device" memory is host memory, kernels run on the
// CPU through cuda-emu.hpp, GEMMs are plain loops. It exports the same symbols the koffi bindings bind, so the whole
// TypeScript engine (bindings, compile cache, memory plan, launches, graphs) runs unchanged on a machine without a GPU.
// Checks that a GPU would not do for us: every allocation is poisoned (0xFF bytes: NaN floats, -1 ints) and has a
// red zone after it that is verified at each synchronize and free; kernel pointer arguments and copies must lie inside
// an allocation.
#include <dlfcn.h>
#include <ucontext.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
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

void emu_run_grid(EmuDim grid, EmuDim block, const std::function<void()>& body) {
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
        run_block(n);
      }
}

// ---------------------------------------------------------------------------------------------- memory
namespace {
constexpr size_t kRedZone = 256;
constexpr unsigned char kRedByte = 0xA5;
std::map<uintptr_t, size_t> g_allocs;  // start -> size
size_t g_allocated = 0;
bool g_corrupt = false;

size_t total_bytes() {
  const char* mb = std::getenv("FAKE_CUDA_TOTAL_MB");
  return (size_t)(mb ? std::atof(mb) : 4096.0) * 1024 * 1024;
}

bool redzones_ok() {
  for (const auto& [start, size] : g_allocs) {
    const unsigned char* rz = (const unsigned char*)(start + size);
    for (size_t i = 0; i < kRedZone; ++i)
      if (rz[i] != kRedByte) {
        std::fprintf(stderr, "fake cuda: write past the end of a %zu-byte allocation (red zone byte %zu)\n", size, i);
        return false;
      }
  }
  return true;
}
}  // namespace

bool fake_in_allocation(uintptr_t p, size_t bytes) {
  auto it = g_allocs.upper_bound(p);
  if (it == g_allocs.begin()) return false;
  --it;
  return p >= it->first && p + bytes <= it->first + it->second;
}

void fake_mark_corrupt(const char* why) {
  std::fprintf(stderr, "fake cuda: %s\n", why);
  g_corrupt = true;
}

// ---------------------------------------------------------------------------------------------- driver API
namespace {
struct FakeModule {
  int actBf16, dState, dConv;
  const EmuKernel* (*find)(const char*);
};
struct FakeFunction {
  const EmuKernel* kernel;
};
std::vector<std::function<void()>>* g_capture = nullptr;  // non-null while a stream is capturing
double now_ms() {  // events time the emulator's own work, so the profiler's breakdown is meaningful here too
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
int g_ctx = 1, g_stream = 2;

int check_sync() {
  if (g_corrupt || !redzones_ok()) {
    g_corrupt = true;
    return 700;  // CUDA_ERROR_ILLEGAL_ADDRESS
  }
  return 0;
}

void run_kernel(const EmuKernel* k, EmuDim grid, EmuDim block, void** params) {
  for (size_t i = 0; i < k->nparams; ++i) {
    if (!k->isPointer[i]) continue;
    uintptr_t p;
    std::memcpy(&p, params[i], sizeof p);
    if (p != 0 && !fake_in_allocation(p, 1)) {
      std::fprintf(stderr, "fake cuda: %s argument %zu (%#lx) is not device memory\n", k->name, i, (unsigned long)p);
      g_corrupt = true;
      return;
    }
  }
  const std::function<void()> body = [&] { k->invoke(params); };
  emu_run_grid(grid, block, body);
}
}  // namespace

extern "C" {
int cuGetErrorName(int code, const char** out) {
  switch (code) {
    case 0: *out = "CUDA_SUCCESS"; return 0;
    case 1: *out = "CUDA_ERROR_INVALID_VALUE"; return 0;
    case 2: *out = "CUDA_ERROR_OUT_OF_MEMORY"; return 0;
    case 200: *out = "CUDA_ERROR_INVALID_IMAGE"; return 0;
    case 500: *out = "CUDA_ERROR_NOT_FOUND"; return 0;
    case 700: *out = "CUDA_ERROR_ILLEGAL_ADDRESS"; return 0;
    default: *out = "CUDA_ERROR_UNKNOWN"; return 0;
  }
}
int cuGetErrorString(int code, const char** out) {
  *out = code == 2 ? "out of memory" : code == 700 ? "an illegal memory access was encountered" : "fake cuda error";
  return 0;
}
int cuInit(unsigned) { return 0; }
int cuDriverGetVersion(int* v) { *v = 13000; return 0; }
int cuDeviceGetCount(int* n) { *n = 1; return 0; }
int cuDeviceGet(int* d, int ordinal) { *d = ordinal; return ordinal == 0 ? 0 : 101; }
int cuDeviceGetName(char* name, int len, int) { std::snprintf(name, (size_t)len, "Fake CUDA (CPU emulator)"); return 0; }
int cuDeviceGetAttribute(int* v, int attr, int) {
  switch (attr) {
    case 13: *v = 1980000; break;
    case 16: *v = 4; break;  // few "SMs", so small tests still take the multi-chunk scan paths
    case 36: *v = 2619000; break;
    case 37: *v = 6144; break;
    case 38: *v = 1 << 20; break;
    case 39: *v = 2048; break;
    case 75: *v = 9; break;
    case 76: *v = 0; break;
    case 97: *v = 232448; break;
    default: *v = 0;
  }
  return 0;
}
int cuDeviceTotalMem_v2(size_t* bytes, int) { *bytes = total_bytes(); return 0; }
int cuDevicePrimaryCtxRetain(void** ctx, int) { *ctx = &g_ctx; return 0; }
int cuDevicePrimaryCtxRelease_v2(int) { return 0; }
int cuCtxSetCurrent(void*) { return 0; }
int cuCtxSynchronize() { return check_sync(); }
int cuMemGetInfo_v2(size_t* free, size_t* total) {
  *total = total_bytes();
  *free = *total > g_allocated ? *total - g_allocated : 0;
  return 0;
}
int cuMemAlloc_v2(uint64_t* ptr, size_t bytes) {
  if (g_allocated + bytes > total_bytes()) return 2;
  const size_t padded = (bytes + kRedZone + 255) / 256 * 256;
  void* p = std::aligned_alloc(256, padded);
  if (!p) return 2;
  std::memset(p, 0xFF, bytes);
  std::memset((char*)p + bytes, kRedByte, kRedZone);
  g_allocs[(uintptr_t)p] = bytes;
  g_allocated += bytes;
  *ptr = (uint64_t)(uintptr_t)p;
  return 0;
}
int cuMemFree_v2(uint64_t ptr) {
  auto it = g_allocs.find((uintptr_t)ptr);
  if (it == g_allocs.end()) return 1;
  if (!redzones_ok()) g_corrupt = true;
  g_allocated -= it->second;
  g_allocs.erase(it);
  std::free((void*)(uintptr_t)ptr);
  return g_corrupt ? 700 : 0;
}
int cuMemcpyHtoDAsync_v2(uint64_t dst, const void* src, size_t n, void*) {
  if (g_capture) return 900;  // not capturable from pageable memory: the engine never does this
  if (!fake_in_allocation((uintptr_t)dst, n)) { fake_mark_corrupt("HtoD copy outside an allocation"); return 1; }
  std::memcpy((void*)(uintptr_t)dst, src, n);
  return 0;
}
int cuMemcpyDtoHAsync_v2(void* dst, uint64_t src, size_t n, void*) {
  if (g_capture) return 900;
  if (!fake_in_allocation((uintptr_t)src, n)) { fake_mark_corrupt("DtoH copy outside an allocation"); return 1; }
  std::memcpy(dst, (const void*)(uintptr_t)src, n);
  return check_sync();
}
int cuMemcpyDtoDAsync_v2(uint64_t dst, uint64_t src, size_t n, void*) {
  if (!fake_in_allocation((uintptr_t)dst, n) || !fake_in_allocation((uintptr_t)src, n)) {
    fake_mark_corrupt("DtoD copy outside an allocation");
    return 1;
  }
  auto op = [=] { std::memmove((void*)(uintptr_t)dst, (const void*)(uintptr_t)src, n); };
  if (g_capture) g_capture->push_back(op); else op();
  return 0;
}
int cuMemsetD32Async(uint64_t dst, unsigned value, size_t count, void*) {
  if (!fake_in_allocation((uintptr_t)dst, count * 4)) { fake_mark_corrupt("memset outside an allocation"); return 1; }
  auto op = [=] {
    uint32_t* p = (uint32_t*)(uintptr_t)dst;
    for (size_t i = 0; i < count; ++i) p[i] = value;
  };
  if (g_capture) g_capture->push_back(op); else op();
  return 0;
}
int cuStreamCreate(void** s, unsigned) { *s = &g_stream; return 0; }
int cuStreamDestroy_v2(void*) { return 0; }
int cuStreamSynchronize(void*) { return check_sync(); }
int cuModuleLoadData(void** module, const void* image) {
  FakeModule m{};
  if (std::sscanf((const char*)image, "FAKE ACT_BF16=%d D_STATE=%d D_CONV=%d", &m.actBf16, &m.dState, &m.dConv) != 3) return 200;
  // the kernels of each build live in their own library next to this one (emulator/build.ts makes them)
  Dl_info self{};
  dladdr((void*)&cuModuleLoadData, &self);
  std::string dir = self.dli_fname ? self.dli_fname : "";
  dir = dir.substr(0, dir.find_last_of('/') + 1);
  char name[128];
  std::snprintf(name, sizeof name, "libfakekernels-a%d-s%d-c%d.so", m.actBf16, m.dState, m.dConv);
  void* lib = dlopen((dir + name).c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    std::fprintf(stderr, "fake cuda: no emulator build for this module (%s): %s\n", name, dlerror());
    return 200;
  }
  m.find = (const EmuKernel* (*)(const char*))dlsym(lib, "emu_find_kernel");
  if (!m.find) return 200;
  *module = new FakeModule(m);
  return 0;
}
int cuModuleUnload(void* module) { delete (FakeModule*)module; return 0; }
int cuModuleGetFunction(void** fn, void* module, const char* name) {
  const EmuKernel* k = ((FakeModule*)module)->find(name);
  if (!k) { std::fprintf(stderr, "fake cuda: no kernel named %s\n", name); return 500; }
  *fn = new FakeFunction{k};
  return 0;
}
int cuFuncGetAttribute(int* v, int attr, void*) { *v = attr == 4 ? 32 : attr == 0 ? 1024 : 0; return 0; }
int cuFuncSetAttribute(void*, int, int) { return 0; }
int cuLaunchKernel(void* fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared, void*,
                   void** params, void** extra) {
  if (extra || shared > 0) return 1;
  const EmuKernel* k = ((FakeFunction*)fn)->kernel;
  const EmuDim grid{gx, gy, gz}, block{bx, by, bz};
  if (g_capture) {  // a launch copies its arguments, so a captured one must too
    std::vector<std::vector<char>> copies;
    for (size_t i = 0; i < k->nparams; ++i) copies.emplace_back((char*)params[i], (char*)params[i] + k->sizes[i]);
    g_capture->push_back([k, grid, block, copies]() mutable {
      std::vector<void*> ptrs;
      for (auto& c : copies) ptrs.push_back(c.data());
      run_kernel(k, grid, block, ptrs.data());
    });
    return 0;
  }
  run_kernel(k, grid, block, params);
  return g_corrupt ? 700 : 0;
}
int cuEventCreate(void** e, unsigned) { *e = new double(0); return 0; }
int cuEventDestroy_v2(void* e) { delete (double*)e; return 0; }
int cuEventRecord(void* e, void*) {
  double* t = (double*)e;
  if (g_capture) g_capture->push_back([t] { *t = now_ms(); }); else *t = now_ms();
  return 0;
}
int cuEventSynchronize(void*) { return check_sync(); }
int cuEventElapsedTime_v2(float* ms, void* a, void* b) { *ms = (float)(*(double*)b - *(double*)a); return 0; }
int cuStreamBeginCapture_v2(void*, int) {
  if (g_capture) return 1;
  g_capture = new std::vector<std::function<void()>>();
  return 0;
}
int cuStreamEndCapture(void*, void** graph) {
  if (!g_capture) return 1;
  *graph = g_capture;
  g_capture = nullptr;
  return 0;
}
int cuGraphInstantiateWithFlags(void** exec, void* graph, uint64_t) {
  *exec = new std::vector<std::function<void()>>(*(std::vector<std::function<void()>>*)graph);
  return 0;
}
int cuGraphLaunch(void* exec, void*) {
  for (auto& op : *(std::vector<std::function<void()>>*)exec) op();
  return g_corrupt ? 700 : 0;
}
int cuGraphExecDestroy(void* exec) { delete (std::vector<std::function<void()>>*)exec; return 0; }
int cuGraphDestroy(void* graph) { delete (std::vector<std::function<void()>>*)graph; return 0; }

// ---------------------------------------------------------------------------------------------- NVRTC
struct FakeProgram {
  std::string name;
  std::string image;
};
const char* nvrtcGetErrorString(int code) { return code == 0 ? "NVRTC_SUCCESS" : "NVRTC_ERROR_COMPILATION"; }
int nvrtcVersion(int* major, int* minor) { *major = 13; *minor = 0; return 0; }
int nvrtcCreateProgram(void** prog, const char*, const char* name, int, const char**, const char**) {
  *prog = new FakeProgram{name ? name : "", ""};
  return 0;
}
int nvrtcDestroyProgram(void** prog) { delete (FakeProgram*)*prog; *prog = nullptr; return 0; }
int nvrtcCompileProgram(void* prog, int n, const char** options) {
  int bf16 = 0, dState = 16, dConv = 4;
  for (int i = 0; i < n; ++i) {
    std::sscanf(options[i], "-DACT_BF16=%d", &bf16);
    std::sscanf(options[i], "-DD_STATE=%d", &dState);
    std::sscanf(options[i], "-DD_CONV=%d", &dConv);
  }
  char buf[96];
  std::snprintf(buf, sizeof buf, "FAKE ACT_BF16=%d D_STATE=%d D_CONV=%d", bf16, dState, dConv);
  ((FakeProgram*)prog)->image = buf;
  return 0;
}
int nvrtcGetProgramLogSize(void*, size_t* n) { *n = 1; return 0; }
int nvrtcGetProgramLog(void*, char* log) { log[0] = 0; return 0; }
int nvrtcGetPTXSize(void* prog, size_t* n) { *n = ((FakeProgram*)prog)->image.size() + 1; return 0; }
int nvrtcGetPTX(void* prog, char* out) { std::memcpy(out, ((FakeProgram*)prog)->image.c_str(), ((FakeProgram*)prog)->image.size() + 1); return 0; }
int nvrtcGetCUBINSize(void* prog, size_t* n) { return nvrtcGetPTXSize(prog, n); }
int nvrtcGetCUBIN(void* prog, char* out) { return nvrtcGetPTX(prog, out); }

// ---------------------------------------------------------------------------------------------- cuBLAS
int g_cublas = 3;
int cublasCreate_v2(void** h) { *h = &g_cublas; return 0; }
int cublasDestroy_v2(void*) { return 0; }
int cublasGetVersion_v2(void*, int* v) { *v = 130000; return 0; }
int cublasSetStream_v2(void*, void*) { return 0; }
int cublasSetWorkspace_v2(void*, uint64_t, size_t) { return 0; }
int cublasSetMathMode(void*, int) { return 0; }
const char* cublasGetStatusName(int s) { return s == 0 ? "CUBLAS_STATUS_SUCCESS" : "CUBLAS_STATUS_INVALID_VALUE"; }
const char* cublasGetStatusString(int s) { return s == 0 ? "success" : "an invalid value was used as an argument"; }
}  // extern "C"

namespace {
double load_elem(uint64_t base, int type, size_t i) {
  if (type == 0) return ((const float*)(uintptr_t)base)[i];
  const uint16_t b = ((const uint16_t*)(uintptr_t)base)[i];
  return (double)__uint_as_float((unsigned)b << 16);
}
void store_elem(uint64_t base, int type, size_t i, double v) {
  if (type == 0) {
    ((float*)(uintptr_t)base)[i] = (float)v;
    return;
  }
  unsigned u = __float_as_uint((float)v);
  if ((u & 0x7fffffffu) > 0x7f800000u) u = (u >> 16) | 0x40u;
  else u = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  ((uint16_t*)(uintptr_t)base)[i] = (uint16_t)u;
}
// Column-major C[m×n] = alpha·op(A)·op(B) + beta·C, accumulated in double (operands unpacked to contiguous rows first).
void gemm(int ta, int tb, int m, int n, int k, float alpha, uint64_t A, int at, int lda, uint64_t B, int bt, int ldb, float beta,
          uint64_t C, int ct, int ldc) {
  std::vector<double> a((size_t)m * k), b((size_t)n * k);  // a[i][p] = op(A)[i][p], b[j][p] = op(B)[p][j]
  for (int i = 0; i < m; ++i)
    for (int p = 0; p < k; ++p) a[(size_t)i * k + p] = load_elem(A, at, ta ? (size_t)p + (size_t)i * lda : (size_t)i + (size_t)p * lda);
  for (int j = 0; j < n; ++j)
    for (int p = 0; p < k; ++p) b[(size_t)j * k + p] = load_elem(B, bt, tb ? (size_t)j + (size_t)p * ldb : (size_t)p + (size_t)j * ldb);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      const double* ai = a.data() + (size_t)i * k;
      const double* bj = b.data() + (size_t)j * k;
      double acc = 0;
      for (int p = 0; p < k; ++p) acc += ai[p] * bj[p];
      const size_t at_c = (size_t)i + (size_t)j * ldc;
      store_elem(C, ct, at_c, alpha * acc + (beta != 0 ? beta * load_elem(C, ct, at_c) : 0.0));
    }
}
bool gemm_args_ok(int at, int bt, int ct, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc) {
  const auto typeOk = [](int t) { return t == 0 || t == 14; };
  if (!typeOk(at) || !typeOk(bt) || !typeOk(ct) || at != bt) return false;
  if (lda < (ta ? k : m) || ldb < (tb ? n : k) || ldc < m) return false;
  return m >= 0 && n >= 0 && k >= 0;
}
}  // namespace

extern "C" {
int cublasGemmEx(void*, int ta, int tb, int m, int n, int k, const float* alpha, uint64_t A, int at, int lda, uint64_t B, int bt,
                 int ldb, const float* beta, uint64_t C, int ct, int ldc, int compute, int) {
  if (!gemm_args_ok(at, bt, ct, ta, tb, m, n, k, lda, ldb, ldc) || compute != 68) return 7;
  const float al = *alpha, be = *beta;
  auto op = [=] { gemm(ta, tb, m, n, k, al, A, at, lda, B, bt, ldb, be, C, ct, ldc); };
  if (g_capture) g_capture->push_back(op); else op();
  return 0;
}
int cublasGemmStridedBatchedEx(void*, int ta, int tb, int m, int n, int k, const float* alpha, uint64_t A, int at, int lda,
                               int64_t sa, uint64_t B, int bt, int ldb, int64_t sb, const float* beta, uint64_t C, int ct, int ldc,
                               int64_t sc, int count, int compute, int) {
  if (!gemm_args_ok(at, bt, ct, ta, tb, m, n, k, lda, ldb, ldc) || compute != 68) return 7;
  const float al = *alpha, be = *beta;
  const int ea = at == 0 ? 4 : 2, ec = ct == 0 ? 4 : 2;
  auto op = [=] {
    for (int b = 0; b < count; ++b)
      gemm(ta, tb, m, n, k, al, A + (uint64_t)(b * sa * ea), at, lda, B + (uint64_t)(b * sb * ea), bt, ldb, be,
           C + (uint64_t)(b * sc * ec), ct, ldc);
  };
  if (g_capture) g_capture->push_back(op); else op();
  return 0;
}
}  // extern "C"
