// The state every kernel check shares: the device scratch, one seeded RNG drawn from in a fixed order (so a seed
// reproduces every input), the report section for this build and its tolerance (f32: 1e-5; bf16 activations: 1e-2).
import { createRng } from '../../rng.ts';
import type { CudaDevice, KernelSet } from '../device.ts';
import { compare, type Report } from './report.ts';
import { Scratch } from './scratch.ts';

export const D_STATE = 16;
export const D_CONV = 4;

export interface KernelCheckContext {
  device: CudaDevice;
  kernels: KernelSet;
  report: Report;
  s: Scratch;
  rng: ReturnType<typeof createRng>;
  section: string;
  /** Records a check: relative error against the reference within `t` (default: the build's tolerance), no NaN. */
  expectClose: (name: string, got: ArrayLike<number>, ref: ArrayLike<number>, t?: number) => void;
  /** Runs one named check group, recording a throw as a failure instead of ending the run. */
  g: (name: string, fn: () => void) => Promise<void>;
}

export function kernelCheckContext(
  device: CudaDevice,
  kernels: KernelSet,
  report: Report,
  seed: number,
): KernelCheckContext {
  const s = new Scratch(device, kernels);
  const build = kernels.build.actBf16 ? 'bf16' : 'f32';
  const section = `kernels-${build}`;
  const tol = kernels.build.actBf16 ? 1e-2 : 1e-5;
  const rng = createRng(seed);
  const expectClose = (name: string, got: ArrayLike<number>, ref: ArrayLike<number>, t = tol) => {
    const c = compare(got, ref);
    report.check(section, name, !c.nan && c.relErr <= t, { relErr: c.relErr, maxAbs: c.maxAbs, tol: t, nan: c.nan });
  };
  const g = (name: string, fn: () => void) => report.guard(section, name, fn);
  return { device, kernels, report, s, rng, section, expectClose, g };
}
