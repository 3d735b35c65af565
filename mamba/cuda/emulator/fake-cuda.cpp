// A fake libcuda + libnvrtc + libcublas for the no-GPU tests: "device" memory is host memory, kernels run on the
// CPU through cuda-emu.hpp, GEMMs are plain loops. It exports the same symbols the koffi bindings bind, so the whole
// TypeScript engine (bindings, compile cache, memory plan, launches, graphs) runs unchanged on a machine without a GPU.
// Checks that a GPU would not do for us: every allocation is poisoned (0xFF bytes: NaN floats, -1 ints) and has a
// red zone after it that is verified at each synchronize and free; kernel pointer arguments and copies must lie inside
// an allocation.
// This file is the driver API and its checked memory; the block scheduler is fake-cuda-fibers.cpp, NVRTC and cuBLAS
// are fake-nvrtc-cublas.cpp (all three link into libfakecuda.so, see build.ts).
#include <dlfcn.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cuda-emu.hpp"
#include "fake-cuda.hpp"

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

void emu_prefetch_l2(const void* p, uint64_t bytes) {
  if (!fake_in_allocation((uintptr_t)p, bytes)) fake_mark_corrupt("an L2 prefetch range is not device memory");
}

// ---------------------------------------------------------------------------------------------- driver API
std::vector<std::function<void()>>* g_capture = nullptr;  // non-null while a stream is capturing
namespace {
struct FakeModule {
  int actBf16, dState, dConv, scanFmaExp;
  const EmuKernel* (*find)(const char*);
};
struct FakeFunction {
  const EmuKernel* kernel;
};
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
  emu_run_grid(grid, block, body, k->poisonShared);
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
  if (std::sscanf((const char*)image, "FAKE ACT_BF16=%d D_STATE=%d D_CONV=%d SCAN_FMA_EXP=%d", &m.actBf16, &m.dState,
                  &m.dConv, &m.scanFmaExp) != 4)
    return 200;
  // the kernels of each build live in their own library next to this one (emulator/build.ts makes them)
  Dl_info self{};
  dladdr((void*)&cuModuleLoadData, &self);
  std::string dir = self.dli_fname ? self.dli_fname : "";
  dir = dir.substr(0, dir.find_last_of('/') + 1);
  char name[128];
  std::snprintf(name, sizeof name, "libfakekernels-a%d-s%d-c%d-e%d.so", m.actBf16, m.dState, m.dConv, m.scanFmaExp);
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
// as an H100 would fit a kernel of 32 registers: warps bound it (2,048 threads a multiprocessor)
int cuOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, void*, int blockSize, size_t) {
  if (blockSize < 1 || blockSize > 1024) return 1;
  *blocks = 2048 / blockSize < 32 ? 2048 / blockSize : 32;
  return 0;
}
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
// cuda.h's CUlaunchConfig and CUlaunchAttribute, as the bindings lay them out; only programmatic stream
// serialization (id 6) is accepted. Blocks run in order here, so a programmatic launch is an ordinary one.
struct FakeLaunchAttribute {
  unsigned id;
  char pad[4];
  union {
    char bytes[64];
    int enabled;  // programmaticStreamSerializationAllowed, cooperative
  } value;
};
struct FakeLaunchConfig {
  unsigned gx, gy, gz, bx, by, bz, shared;
  void* stream;
  FakeLaunchAttribute* attrs;
  unsigned numAttrs;
};
static_assert(sizeof(FakeLaunchAttribute) == 72 && sizeof(FakeLaunchConfig) == 56, "cuda.h layouts");
// Programmatic launch (6) runs as a plain one; a cooperative launch (2) of more than one block cannot be honoured, since
// blocks run one after another, and fails as a GPU's would when the blocks do not fit (720, too large).
int cuLaunchKernelEx(const FakeLaunchConfig* c, void* fn, void** params, void** extra) {
  for (unsigned i = 0; i < c->numAttrs; ++i) {
    const FakeLaunchAttribute& a = c->attrs[i];
    if ((a.id != 6 && a.id != 2) || a.value.enabled != 1) return 1;
    if (a.id == 2 && (unsigned long)c->gx * c->gy * c->gz > 1) return 720;
  }
  return cuLaunchKernel(fn, c->gx, c->gy, c->gz, c->bx, c->by, c->bz, c->shared, c->stream, params, extra);
}
int cuEventCreate(void** e, unsigned) { *e = new double(0); return 0; }
int cuEventDestroy_v2(void* e) { delete (double*)e; return 0; }
// As on a GPU: a plain record inside a capture is only an ordering edge (the event is never set by a replay); with
// CU_EVENT_RECORD_EXTERNAL it becomes a node that records at every replay, and that flag outside a capture is invalid.
int cuEventRecord(void* e, void*) {
  if (!g_capture) *(double*)e = now_ms();
  return 0;
}
int cuEventRecordWithFlags(void* e, void* s, unsigned flags) {
  if (flags == 0) return cuEventRecord(e, s);
  if (!g_capture) return 1;
  double* t = (double*)e;
  g_capture->push_back([t] { *t = now_ms(); });
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
}  // extern "C"
