// Where the CUDA libraries are: LIBCUDA (the driver, e.g. /usr/local/nvidia/lib64/libcuda.so.1) and CUDA_LIB_DIR
// (the toolkit's libnvrtc.so / libcublas.so), as .device/boot.sh exports them; plain sonames otherwise, so the
// dynamic linker's search path applies.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import koffi, { type LibraryHandle } from 'koffi';

export type CudaLibraryName = 'cuda' | 'nvrtc' | 'cublas';

const SONAMES: Record<CudaLibraryName, string[]> = {
  cuda: ['libcuda.so.1', 'libcuda.so'],
  nvrtc: ['libnvrtc.so', 'libnvrtc.so.13', 'libnvrtc.so.12'],
  cublas: ['libcublas.so', 'libcublas.so.13', 'libcublas.so.12'],
};

export class CudaLibraryError extends Error {
  override name = 'CudaLibraryError';
}

/** Candidate paths for a library, most specific first. */
export function libraryCandidates(lib: CudaLibraryName, env: NodeJS.ProcessEnv = process.env): string[] {
  if (lib === 'cuda') return env.LIBCUDA ? [env.LIBCUDA] : SONAMES.cuda;
  const dir = env.CUDA_LIB_DIR;
  if (!dir) return SONAMES[lib];
  const inDir = SONAMES[lib].map((n) => join(dir, n)).filter((p) => existsSync(p));
  return inDir.length > 0 ? inDir : SONAMES[lib];
}

export type NativeFunction = (...args: any[]) => any; // eslint-disable-line @typescript-eslint/no-explicit-any

const loaded = new Map<string, LibraryHandle>();

/** Loads the first candidate that opens; the error lists every path tried and why it failed. */
export function loadLibrary(
  lib: CudaLibraryName,
  env: NodeJS.ProcessEnv = process.env,
): { handle: LibraryHandle; path: string } {
  const failures: string[] = [];
  for (const path of libraryCandidates(lib, env)) {
    const cached = loaded.get(path);
    if (cached) return { handle: cached, path };
    try {
      const handle = koffi.load(path);
      loaded.set(path, handle);
      return { handle, path };
    } catch (err) {
      failures.push(`${path}: ${(err as Error).message}`);
    }
  }
  const hint = lib === 'cuda' ? 'set LIBCUDA' : 'set CUDA_LIB_DIR';
  throw new CudaLibraryError(`cannot load ${lib} (${hint}); tried ${failures.join('; ')}`);
}

/** Declares the first prototype whose symbol exists (e.g. a _v2 name, then the plain one). */
export function bindFirst(handle: LibraryHandle, prototypes: string[]): NativeFunction {
  const errors: string[] = [];
  for (const proto of prototypes) {
    try {
      return handle.func(proto);
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  throw new CudaLibraryError(`none of these symbols is exported: ${errors.join('; ')}`);
}

/** A pointer value from koffi (number or bigint) as a JS number; device and host addresses stay below 2^53. */
export function asAddress(value: unknown): number {
  const n = typeof value === 'bigint' ? Number(value) : (value as number);
  if (!Number.isSafeInteger(n)) throw new CudaLibraryError(`pointer ${String(value)} does not fit a JS number`);
  return n;
}
