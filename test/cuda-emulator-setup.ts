// Shared setup of the CPU-emulator suites: build the fake CUDA libraries, point the engine's bindings at them and
// import the engine after that (its module reads the library paths once), plus the comparisons those suites share.
import { beforeAll, expect } from 'vitest';
import { buildFakeCuda, haveCxx } from '../mamba/cuda/emulator/build.ts';
import type { CudaEngine } from '../mamba/cuda/engine.ts';
import type { KernelBuild } from '../mamba/cuda/kernels/manifest.ts';
import type { PrefillOptions, PrefillResult } from '../mamba/engine.ts';
import type { ReferenceEngine } from '../mamba/reference/index.ts';
import { maxAbsDiff, maxStateDiff, tempDir } from './helpers.ts';

export const CXX = haveCxx();

/** Registers the suite's beforeAll; the returned getter gives the engine class once it has run. */
export function emulatedCudaEngine(extraBuilds: KernelBuild[] = []): () => typeof CudaEngine {
  let engine: typeof CudaEngine | undefined;
  beforeAll(async () => {
    if (!CXX) return;
    const fake = buildFakeCuda();
    if (extraBuilds.length) buildFakeCuda(extraBuilds);
    Object.assign(process.env, fake.env, {
      DECISERVE_CUDA_CACHE: tempDir('deciserve-nvrtc-cache-'),
      FAKE_CUDA_TOTAL_MB: '2048',
    });
    ({ CudaEngine: engine } = await import('../mamba/cuda/engine.ts'));
  }, 120_000);
  return () => {
    if (!engine) throw new Error('the emulator is not set up (no g++?)');
    return engine;
  };
}

export const keptRows = (k: { layer: number; indices: ArrayLike<number> }[]) =>
  k.map((x) => [x.layer, Array.from(x.indices)]);
export const maxLogitDiff = (a: Float32Array[], b: Float32Array[]) =>
  Math.max(0, ...a.map((x, i) => maxAbsDiff(x, b[i]!)));

/**
 * fp32 parity with the reference engine within `tol`: each request alone and all as one pass (logits, states, kept
 * rows), then `long` on `segmented` (an engine whose passes are too short for it: three passes carrying the state).
 */
export async function expectReferenceParity(
  a: {
    engine: CudaEngine;
    segmented: CudaEngine;
    reference: ReferenceEngine;
    requests: { ids: number[]; options: PrefillOptions }[];
    long: { ids: number[]; positions: number[] };
  },
  tol: number,
  label = '',
): Promise<void> {
  const check = (got: PrefillResult, ref: PrefillResult, what: string) => {
    expect(maxLogitDiff(got.logits, ref.logits), `${label} ${what}`).toBeLessThan(tol);
    expect(maxStateDiff(got.state, ref.state), `${label} ${what}`).toBeLessThan(tol);
    expect(keptRows(got.kept), `${label} ${what}`).toEqual(keptRows(ref.kept));
  };
  for (const r of a.requests)
    check(await a.engine.prefill(r.ids, r.options), await a.reference.prefill(r.ids, r.options), `L=${r.ids.length}`);
  const batch = await a.engine.prefillBatch(a.requests);
  expect(a.engine.lastPasses).toHaveLength(1);
  const refs = await a.reference.prefillBatch(a.requests);
  for (const [i, got] of batch.entries()) check(got, refs[i]!, `batch request ${i}`);
  const options = { logitPositions: a.long.positions };
  check(await a.segmented.prefill(a.long.ids, options), await a.reference.prefill(a.long.ids, options), 'segments');
  expect(a.segmented.lastPasses.length, `${label} segments`).toBe(3);
}
