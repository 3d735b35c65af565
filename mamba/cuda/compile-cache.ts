// NVRTC compilation of the kernels, cached in memory and on disk by a hash of everything that changes the binary:
// the sources, the options (architecture, -D settings), the NVRTC version and the device. A cache miss costs one
// NVRTC run (about a second); a corrupt or unwritable cache only costs that too.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Nvrtc, NvrtcOutput } from './bindings/nvrtc.ts';
import { kernelDefines, loadKernelSources, type KernelBuild, type KernelSources } from './kernels/manifest.ts';

export interface CompiledKernels extends NvrtcOutput {
  key: string;
  fromCache: 'memory' | 'disk' | null;
  compileMs: number;
  options: string[];
}

export function compileOptions(build: KernelBuild, arch: string): string[] {
  return [`-arch=${arch}`, '-std=c++17', '-lineinfo', ...kernelDefines(build)];
}

/** sha256 over the sources (in a fixed order), the options, the compiler version and the device name. */
export function kernelCacheKey(
  sources: KernelSources,
  options: string[],
  compilerVersion: string,
  device: string,
): string {
  const h = createHash('sha256');
  const field = (s: string) => h.update(`${s.length}:${s}`);
  field(sources.source);
  for (const name of Object.keys(sources.headers).sort()) {
    field(name);
    field(sources.headers[name]!);
  }
  for (const o of options) field(o);
  field(compilerVersion);
  field(device);
  return h.digest('hex');
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.DECISERVE_CUDA_CACHE ?? join(homedir(), '.cache', 'deciserve', 'cuda');
}

export class KernelCompiler {
  private readonly memory = new Map<string, NvrtcOutput>();

  constructor(
    private readonly nvrtc: Nvrtc,
    /** null: no disk cache. */
    private readonly cacheDir: string | null = defaultCacheDir(),
    private readonly sources: KernelSources = loadKernelSources(),
  ) {}

  compile(build: KernelBuild, arch: string, device: string): CompiledKernels {
    const options = compileOptions(build, arch);
    const key = kernelCacheKey(this.sources, options, this.nvrtc.version(), device);
    const kind = arch.startsWith('sm_') ? 'cubin' : 'ptx';
    const hit = this.memory.get(key);
    if (hit) return { ...hit, key, fromCache: 'memory', compileMs: 0, options };
    const file = this.cacheDir ? join(this.cacheDir, `${key}.${kind}`) : null;
    if (file) {
      try {
        const image = new Uint8Array(readFileSync(file));
        const out: NvrtcOutput = { kind, image, log: '' };
        this.memory.set(key, out);
        return { ...out, key, fromCache: 'disk', compileMs: 0, options };
      } catch {
        // not cached yet (or unreadable): compile
      }
    }
    const t0 = performance.now();
    const out = this.nvrtc.compile(this.sources, options);
    const compileMs = performance.now() - t0;
    this.memory.set(key, out);
    if (file) {
      try {
        mkdirSync(this.cacheDir!, { recursive: true });
        const tmp = `${file}.${process.pid}.tmp`;
        writeFileSync(tmp, out.image);
        renameSync(tmp, file); // atomic: a concurrent reader sees the old file or the whole new one
      } catch {
        // a read-only or full disk only costs the next process a compile
      }
    }
    return { ...out, key, fromCache: null, compileMs, options };
  }
}
