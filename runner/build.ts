// The production runner as JavaScript: runner/cli.ts, the engine thread and the token thread bundled by esbuild into dist/runner/
// (packages stay external, installed by `npm ci --omit=dev`), so the image runs plain `node` without tsx.
//   npm run build:runner [-- <outdir>]
// At run time the bundle finds the NVRTC kernels under mamba/cuda/kernels of its working directory
// (mamba/cuda/kernels/manifest.ts) and its packages in node_modules, as in infra/runner/Dockerfile.
import { resolve } from 'node:path';
import { build } from 'esbuild';

const REPO = resolve(import.meta.dirname, '..');

export async function buildRunner(outdir = resolve(REPO, 'dist/runner')): Promise<string> {
  await build({
    // Both at the top of outdir: engine/engine-host.ts, bundled into cli.js, starts ./engine-thread.js beside it.
    entryPoints: [
      { in: resolve(REPO, 'runner/cli.ts'), out: 'cli' },
      { in: resolve(REPO, 'runner/engine/engine-thread.ts'), out: 'engine-thread' },
      { in: resolve(REPO, 'mamba/token-thread.ts'), out: 'token-thread' }, // mamba/token-meter.ts starts it
      { in: resolve(REPO, 'mamba/token-pool-thread.ts'), out: 'token-pool-thread' }, // mamba/token-pool.ts starts them
    ],
    outdir,
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'esm',
    packages: 'external',
    sourcemap: true,
    logLevel: 'warning',
  });
  return outdir;
}

if (process.argv[1] && resolve(process.argv[1]) === import.meta.filename) {
  process.stdout.write(`built ${await buildRunner(process.argv[2] ? resolve(process.argv[2]) : undefined)}\n`);
}
