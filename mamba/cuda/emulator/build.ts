// Builds the CPU emulator with g++: libfakecuda.so (a fake libcuda + libnvrtc + libcublas; "device" memory is host
// memory) and one libfakekernels-*.so per kernel build (kernels/*.cu compiled for the host), cached in the temp
// folder by a hash of the sources. Tests point LIBCUDA and CUDA_LIB_DIR at the result.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type KernelBuild, kernelDefines } from '../kernels/manifest.ts';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const KERNELS = join(HERE, '..', 'kernels');
const CXXFLAGS = [
  '-std=c++17',
  '-O2',
  '-shared',
  '-fPIC',
  '-Wall',
  '-Wno-unknown-pragmas',
  `-I${KERNELS}`,
  `-I${HERE}`,
];

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

export const DEFAULT_BUILDS: KernelBuild[] = [
  { actBf16: false, dState: 16, dConv: 4 },
  { actBf16: true, dState: 16, dConv: 4 },
];

function compileOnce(out: string, args: string[]): void {
  if (existsSync(out)) return;
  const tmp = `${out}.${process.pid}.tmp`;
  execFileSync('g++', [...args, '-o', tmp], { stdio: 'pipe' });
  renameSync(tmp, out); // atomic: parallel test files may build the same thing
}

export function buildFakeCuda(builds: KernelBuild[] = DEFAULT_BUILDS): FakeCuda {
  const hash = createHash('sha256');
  for (const dir of [HERE, KERNELS]) {
    for (const f of readdirSync(dir)
      .filter((n) => /\.(cpp|hpp|cu|cuh)$/.test(n))
      .sort())
      hash.update(f).update(readFileSync(join(dir, f)));
  }
  const dir = join(tmpdir(), `deciserve-fakecuda-${hash.digest('hex').slice(0, 16)}`);
  mkdirSync(dir, { recursive: true });
  const driver = join(dir, 'libfakecuda.so');
  // one library from three translation units: driver + memory, the block scheduler, NVRTC + cuBLAS
  const driverSources = ['fake-cuda.cpp', 'fake-cuda-fibers.cpp', 'fake-nvrtc-cublas.cpp'].map((f) => join(HERE, f));
  compileOnce(driver, [...CXXFLAGS, '-Wl,-soname,libfakecuda.so', ...driverSources, '-ldl']);
  for (const b of builds) {
    const name = `libfakekernels-a${b.actBf16 ? 1 : 0}-s${b.dState}-c${b.dConv}-e${b.scanFmaExp ?? 0}.so`;
    const defines = kernelDefines(b);
    // linked against the driver library, which provides the fiber scheduler the kernels call into
    compileOnce(join(dir, name), [
      ...CXXFLAGS,
      ...defines,
      join(HERE, 'kernels-host.cpp'),
      `-L${dir}`,
      '-lfakecuda',
      '-Wl,-rpath,$ORIGIN',
    ]);
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
