// The project's kernels (kernels/*.cu) compiled for the CPU emulator, and the name → kernel table the fake
// cuModuleGetFunction looks in. One library per build (-DACT_BF16 / -DD_STATE / -DD_CONV, as the engine asks NVRTC);
// the fake driver opens the one a module's settings name.
#include <cstring>

#include "cuda-emu.hpp"
#include "fake-cuda.hpp"

#include "norm.cu"
#include "conv.cu"
#include "timestep.cu"
#include "scan.cu"
#include "scan-staged.cu"
#include "scan-fused.cu"
#include "decimate.cu"
#include "gather.cu"
#include "head.cu"
#include "step.cu"
#include "step-fused.cu"
#include "step-layers.cu"
#include "step-mma.cu"
#include "step-gemm.cu"
#include "convert.cu"

// the bounds of this library's __shared__ section (the linker names them; hidden: each build poisons its own)
extern "C" __attribute__((visibility("hidden"))) char __start_emu_shared[], __stop_emu_shared[];
static void poison_shared() { std::memset(__start_emu_shared, 0xFF, __stop_emu_shared - __start_emu_shared); }

static EmuKernel with_poison(EmuKernel k) {
  k.poisonShared = poison_shared;
  return k;
}
#define EMU_KERNEL(f) with_poison(emu_make_kernel<f>(#f, f))

static const EmuKernel kKernels[] = {
    EMU_KERNEL(add_rmsnorm),        EMU_KERNEL(final_rmsnorm_rows), EMU_KERNEL(conv1d_silu),
    EMU_KERNEL(conv_state_capture), EMU_KERNEL(dt_softplus),      EMU_KERNEL(scan_chunk_state),   EMU_KERNEL(scan_carry), EMU_KERNEL(scan_carry_segmented),
    EMU_KERNEL(scan_chunk_output), EMU_KERNEL(scan_chunk_state_staged), EMU_KERNEL(scan_chunk_output_staged),
    EMU_KERNEL(delta_score),       EMU_KERNEL(decimate_select),    EMU_KERNEL(gather_rows_u32),
    EMU_KERNEL(gather_rows_u16),  EMU_KERNEL(log_softmax_rows),   EMU_KERNEL(argmax_rows),        EMU_KERNEL(conv_step),
    EMU_KERNEL(ssm_step_dt),  EMU_KERNEL(ssm_step_dt_s2), EMU_KERNEL(ssm_step_dt_s4),         EMU_KERNEL(convert_f32_to_bf16),        EMU_KERNEL(add_bias_act),       EMU_KERNEL(add_bias_f32),
    EMU_KERNEL(scan_fused),        EMU_KERNEL(scan_fused_t2),  EMU_KERNEL(step_in_proj_conv),
    EMU_KERNEL(step_dt_ssm),      EMU_KERNEL(step_out_proj),   EMU_KERNEL(head_greedy),       EMU_KERNEL(step_layers),
    EMU_KERNEL(step_in_proj_conv_mma), EMU_KERNEL(step_gemm_mma),
};

extern "C" const EmuKernel* emu_find_kernel(const char* name) {
  for (const EmuKernel& k : kKernels)
    if (std::strcmp(k.name, name) == 0) return &k;
  return nullptr;
}
