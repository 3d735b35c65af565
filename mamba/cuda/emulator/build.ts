// Builds the CPU emulator (fake libcuda + libnvrtc + libcublas running kernels/*.cu on the host) with g++, cached in
// the temp folder by a hash of its sources and settings. Tests point LIBCUDA and CUDA_LIB_DIR at the result.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KernelBuild } from '../kernels/manifest.ts';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const KERNELS = join(HERE, '..', 'kernels');

export function haveCxx(): boolean {
  try {
    execFileSync('g++', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export interface FakeCuda {
  dir: string;
  env: { LIBCUDA: string; CUDA_LIB_DIR: string };
}

export function buildFakeCuda(build: KernelBuild): FakeCuda {
  const sources = [join(HERE, 'fake-cuda.cpp'), join(HERE, 'kernels-host.cpp')];
  const hash = createHash('sha256');
  for (const dir of [HERE, KERNELS]) {
    for (const f of readdirSync(dir).filter((n) => /\.(cpp|hpp|cu|cuh)$/.test(n)).sort()) hash.update(f).update(readFileSync(join(dir, f)));
  }
  const defines = [`-DACT_BF16=${build.actBf16 ? 1 : 0}`, `-DD_STATE=${build.dState}`, `-DD_CONV=${build.dConv}`];
  hash.update(defines.join(' '));
  const dir = join(tmpdir(), `deciserve-fakecuda-${hash.digest('hex').slice(0, 16)}`);
  const lib = join(dir, 'libfakecuda.so');
  if (!existsSync(lib)) {
    mkdirSync(dir, { recursive: true });
    const tmp = `${lib}.${process.pid}.tmp`;
    execFileSync('g++', ['-std=c++17', '-O2', '-shared', '-fPIC', '-Wall', '-Wno-unknown-pragmas', `-I${KERNELS}`, `-I${HERE}`, ...defines, ...sources, '-o', tmp], { stdio: 'pipe' });
    renameSync(tmp, lib);
  }
  for (const name of ['libcuda.so.1', 'libnvrtc.so', 'libcublas.so']) {
    const link = join(dir, name);
    if (!existsSync(link)) {
      try {
        symlinkSync('libfakecuda.so', link);
      } catch {
        // another test process made it first
      }
    }
  }
  return { dir, env: { LIBCUDA: join(dir, 'libcuda.so.1'), CUDA_LIB_DIR: dir } };
}
