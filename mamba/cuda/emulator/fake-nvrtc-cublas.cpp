// The fake libnvrtc + libcublas of libfakecuda.so: "compiling" a program records only its build defines (the driver's
// cuModuleLoadData loads the matching host-compiled kernel library), and GEMMs are plain double-accumulated loops
// that a capturing stream records like any launch.
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "cuda-emu.hpp"
#include "fake-cuda.hpp"

extern "C" {
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
  int bf16 = 0, dState = 16, dConv = 4, scanFmaExp = 0;
  for (int i = 0; i < n; ++i) {
    std::sscanf(options[i], "-DACT_BF16=%d", &bf16);
    std::sscanf(options[i], "-DD_STATE=%d", &dState);
    std::sscanf(options[i], "-DD_CONV=%d", &dConv);
    std::sscanf(options[i], "-DSCAN_FMA_EXP=%d", &scanFmaExp);
  }
  char buf[128];
  std::snprintf(buf, sizeof buf, "FAKE ACT_BF16=%d D_STATE=%d D_CONV=%d SCAN_FMA_EXP=%d", bf16, dState, dConv, scanFmaExp);
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
}  // extern "C"
