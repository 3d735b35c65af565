// CI check without a GPU: every kernel compiles with nvcc for sm_90 in both builds (f32 and bf16 activations), from
// the same translation unit NVRTC compiles; every kernel the engine launches is in the PTX; ptxas reports no spills.
// Skipped only where nvcc is absent.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { KERNEL_NAMES, kernelDefines, kernelDir, loadKernelSources } from '../mamba/cuda/kernels/manifest.ts';

const run = promisify(execFile);

function findNvcc(): string | null {
  for (const candidate of [process.env.NVCC, 'nvcc', '/usr/local/bin/nvcc', '/usr/local/cuda/bin/nvcc']) {
    if (!candidate) continue;
    try {
      execFileSync(candidate, ['--version'], { stdio: 'ignore' });
      return candidate;
    } catch {
      // try the next
    }
  }
  return null;
}

const NVCC = findNvcc();
const BUILDS = [
  { name: 'f32', build: { actBf16: false, dState: 16, dConv: 4 } },
  { name: 'bf16', build: { actBf16: true, dState: 16, dConv: 4 } },
];

describe.skipIf(!NVCC)('CUDA kernels compile with nvcc (sm_90)', () => {
  const dir = kernelDir();
  const out = mkdtempSync(join(tmpdir(), 'deciserve-nvcc-'));
  const all = join(out, 'deciserve_kernels.cu');
  writeFileSync(all, loadKernelSources(dir).source); // the same translation unit NVRTC compiles

  it('the whole module, both builds: PTX has every kernel, ptxas spills nothing', async () => {
    await Promise.all(
      BUILDS.map(async ({ name, build }) => {
        const defines = kernelDefines(build);
        const ptx = join(out, `${name}.ptx`);
        await run(NVCC!, ['--ptx', '-arch=sm_90', '-std=c++17', `-I${dir}`, ...defines, '-o', ptx, all]);
        const text = readFileSync(ptx, 'utf8');
        for (const kernel of KERNEL_NAMES)
          expect(text, `${name}: ${kernel}`).toMatch(new RegExp(`\\.entry ${kernel}\\(`));
        const { stderr } = await run(NVCC!, [
          '-cubin',
          '-arch=sm_90',
          '-std=c++17',
          `-I${dir}`,
          ...defines,
          '-Xptxas',
          '-v',
          '-o',
          join(out, `${name}.cubin`),
          all,
        ]);
        const spills = [...stderr.matchAll(/(\d+) bytes spill stores/g)].map((m) => Number(m[1]));
        expect(spills.length).toBe(KERNEL_NAMES.length);
        expect(
          spills.every((s) => s === 0),
          `${name}: ptxas reported spills\n${stderr}`,
        ).toBe(true);
      }),
    );
  }, 120_000);
});
