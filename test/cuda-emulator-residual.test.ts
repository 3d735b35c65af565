// Prefill with out_proj adding into the residual stream (engine option residualInOutProj: cuBLAS beta = 1, the next
// norm only reads the residual, the head's norm takes no hidden) on the CPU emulator, against the reference engine:
// plain prompts, one and two decimating layers (the residual's kept-row copy alternates buffers), out_proj biases, a
// mixed batch and segments; bf16 against the default path within the bf16 tolerance. Needs g++; skipped without it.
import { describe, expect, it } from 'vitest';
import type { DecimationConfig, PrefillOptions } from '../mamba/engine.ts';
import {
  CXX,
  emulatedCudaEngine,
  expectReferenceParity,
  keptRows as kept,
  maxLogitDiff,
} from './cuda-emulator-setup.ts';
import { maxAbsDiff, maxStateDiff, randomIds, tinyModel } from './helpers.ts';

const TOL = 1e-4;
const CudaEngine = emulatedCudaEngine();

describe.skipIf(!CXX)('residualInOutProj on the CPU emulator', () => {
  it('fp32 equals the reference: plain, one and two decimating layers, biases, a batch, segments', async () => {
    const one: DecimationConfig = { layers: [1], beta: 0.5, lBase: 30, minSeqLen: 4 };
    const two: DecimationConfig = { layers: [0, 2], beta: 0.5, lBase: 40, minSeqLen: 4 };
    for (const biases of [false, true]) {
      const m = tinyModel({ dModel: 24, nLayer: 3, dState: 16, seed: 13, biases });
      const V = m.config.vocabSize;
      const options = { precision: 'fp32', guardBytes: 256, residualInOutProj: true } as const;
      const engine = CudaEngine().create(m.config, m.weights, options);
      const segmented = CudaEngine().create(m.config, m.weights, { ...options, maxTokensPerPass: 50 });
      try {
        expect(engine.name).toBe('cuda-fp32-resid');
        const reqs: { ids: number[]; options: PrefillOptions }[] = [
          { ids: randomIds(1, V, 1), options: {} },
          { ids: randomIds(90, V, 2), options: { logitPositions: 'all' } },
          { ids: randomIds(150, V, 3), options: { decimation: one, protect: 3 } },
          { ids: randomIds(160, V, 4), options: { decimation: two, protect: 2, logitPositions: [158, 159] } },
        ];
        const long = { ids: randomIds(120, V, 9), positions: [0, 60, 119] };
        await expectReferenceParity(
          { engine, segmented, reference: m.engine, requests: reqs, long },
          TOL,
          `biases ${biases}`,
        );
      } finally {
        await engine.dispose();
        await segmented.dispose();
      }
    }
  }, 240_000);

  it('bf16 stays within 1% of the largest logit of the default path, with the same kept rows', async () => {
    const m = tinyModel({ dModel: 24, nLayer: 3, dState: 16, seed: 5 });
    const fused = CudaEngine().create(m.config, m.weights, { precision: 'bf16', residualInOutProj: true });
    const plain = CudaEngine().create(m.config, m.weights, { precision: 'bf16' });
    try {
      const ids = randomIds(200, m.config.vocabSize, 1);
      const options = { decimation: { layers: [1], beta: 0.5, lBase: 40, minSeqLen: 4 }, protect: 3 };
      const [a, b] = [await fused.prefill(ids, options), await plain.prefill(ids, options)];
      const largest = Math.max(...Array.from(b.logits[0]!, Math.abs));
      expect(maxLogitDiff(a.logits, b.logits)).toBeLessThan(0.01 * largest);
      expect(kept(a.kept)).toEqual(kept(b.kept));
    } finally {
      await fused.dispose();
      await plain.dispose();
    }
  }, 120_000);

  it('decode steps after such a prefill continue as after the default one', async () => {
    const m = tinyModel({ dModel: 24, nLayer: 2, dState: 16, seed: 8 });
    const fused = CudaEngine().create(m.config, m.weights, { precision: 'fp32', residualInOutProj: true });
    try {
      const ids = randomIds(40, m.config.vocabSize, 2);
      const got = await fused.prefill(ids, {});
      const ref = await m.engine.prefill(ids, {});
      const a = await fused.step(7, got.state);
      const b = await m.engine.step(7, ref.state);
      expect(maxAbsDiff(a.logits, b.logits)).toBeLessThan(TOL);
    } finally {
      await fused.dispose();
    }
  }, 120_000);
});
