// What every part of the CUDA engine shares: the device, the kernel build, the config and the weights on the device.
import type { MambaConfig, ModelState } from '../engine.ts';
import type { GemmType } from './bindings/cublas.ts';
import type { CudaDevice, KernelSet } from './device.ts';
import type { DeviceWeights } from './device-weights.ts';
import { activationBytes, type Precision } from './memory-plan.ts';

export interface EngineCore {
  device: CudaDevice;
  kernels: KernelSet;
  config: MambaConfig;
  weights: DeviceWeights;
  precision: Precision;
}

export function actType(core: EngineCore): GemmType {
  return core.precision === 'bf16' ? 'bf16' : 'f32';
}

export function actBytes(core: EngineCore): 2 | 4 {
  return activationBytes(core.precision) as 2 | 4;
}

/** f32 words of one sequence's whole state: conv [nLayer, dInner, dConv] then ssm [nLayer, dInner, dState]. */
export function stateWords(config: MambaConfig): { conv: number; ssm: number; total: number } {
  const conv = config.nLayer * config.dInner * config.dConv;
  const ssm = config.nLayer * config.dInner * config.dState;
  return { conv, ssm, total: conv + ssm };
}

/** A whole-state pair (the layout above) as per-layer views: the engines' ModelState. */
export function layerStates(config: MambaConfig, s: { conv: Float32Array; ssm: Float32Array }): ModelState {
  const { nLayer, dInner, dConv, dState } = config;
  return Array.from({ length: nLayer }, (_, i) => ({
    conv: s.conv.subarray(i * dInner * dConv, (i + 1) * dInner * dConv),
    ssm: s.ssm.subarray(i * dInner * dState, (i + 1) * dInner * dState),
  }));
}
