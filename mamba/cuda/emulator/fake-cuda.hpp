// The kernel registry shared by the fake driver (fake-cuda.cpp) and the host build of the kernels (kernels-host.cpp),
// and what the fake driver's translation units share.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda-emu.hpp"

constexpr size_t kMaxKernelParams = 32;

struct EmuKernel {
  const char* name;
  size_t nparams;
  size_t sizes[kMaxKernelParams];
  bool isPointer[kMaxKernelParams];
  void (*invoke)(void** params);
  void (*poisonShared)();  // fills the library's __shared__ section with 0xFF (cuda-emu.hpp)
};

extern "C" const EmuKernel* emu_find_kernel(const char* name);
void emu_run_grid(EmuDim grid, EmuDim block, const std::function<void()>& body, void (*beforeBlock)());

// Non-null while a stream is capturing (fake-cuda.cpp); the fake cuBLAS records its GEMMs into it like launches.
extern std::vector<std::function<void()>>* g_capture;

template <auto F, typename... A, size_t... I>
void emu_invoke_impl(void (*)(A...), void** params, std::index_sequence<I...>) {
  F(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(params[I])...);
}

template <auto F, typename... A>
EmuKernel emu_make_kernel(const char* name, void (*)(A...)) {
  static_assert(sizeof...(A) <= kMaxKernelParams, "too many kernel parameters");
  EmuKernel k{};
  k.name = name;
  k.nparams = sizeof...(A);
  const size_t sizes[] = {sizeof(A)..., 0};
  const bool ptrs[] = {std::is_pointer_v<A>..., false};
  for (size_t i = 0; i < k.nparams; ++i) {
    k.sizes[i] = sizes[i];
    k.isPointer[i] = ptrs[i];
  }
  k.invoke = [](void** params) { emu_invoke_impl<F>(F, params, std::index_sequence_for<A...>{}); };
  return k;
}
