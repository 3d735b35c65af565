// The CUDA engine on a real GPU (skipped cleanly where no driver or device is present, e.g. CI). The full GPU
// validation is mamba/cuda/device-check.ts; this is the quick version for a developer's GPU box.
import { afterAll, describe, expect, it } from 'vitest';
import { CudaDevice } from '../mamba/cuda/device.ts';
import { CudaEngine } from '../mamba/cuda/engine.ts';
import { argmax } from '../mamba/sampling.ts';
import { maxAbsDiff, maxStateDiff, randomIds, tinyModel } from './helpers.ts';

// DECISERVE_CUDA_TEST_ON_EMULATOR=1 with LIBCUDA/CUDA_LIB_DIR pointing at the emulator runs these on the CPU.
const GPU =
  (process.env.DECISERVE_CUDA_TEST_ON_EMULATOR === '1' || !process.env.LIBCUDA?.includes('fakecuda')) &&
  CudaDevice.available();

describe.skipIf(!GPU)('CUDA engine on the GPU', () => {
  const m = tinyModel({ dModel: 64, nLayer: 4, dState: 16, seed: 11 });
  const engines: CudaEngine[] = [];
  afterAll(async () => {
    for (const e of engines) await e.dispose();
  });

  it('fp32 matches the reference: prefill, DeciMamba, steps', async () => {
    const engine = CudaEngine.create(m.config, m.weights, { precision: 'fp32', guardBytes: 256 });
    engines.push(engine);
    const ids = randomIds(300, m.config.vocabSize, 1);
    const decimation = { layers: [1, 2], beta: 0.5, lBase: 80, minSeqLen: 20 };
    const [plain, deci] = await engine.prefillBatch([
      { ids, options: { logitPositions: [0, 150, 299] } },
      { ids, options: { decimation, protect: 8, logitPositions: [299] } },
    ]);
    const refPlain = await m.engine.prefill(ids, { logitPositions: [0, 150, 299] });
    const refDeci = await m.engine.prefill(ids, { decimation, protect: 8, logitPositions: [299] });
    plain!.logits.forEach((l, i) => expect(maxAbsDiff(l, refPlain.logits[i]!)).toBeLessThan(1e-3));
    expect(maxStateDiff(plain!.state, refPlain.state)).toBeLessThan(1e-3);
    expect(deci!.kept.map((k) => Array.from(k.indices))).toEqual(refDeci.kept.map((k) => Array.from(k.indices)));
    expect(maxAbsDiff(deci!.logits[0]!, refDeci.logits[0]!)).toBeLessThan(1e-3);
    let state = plain!.state;
    let refState = refPlain.state;
    let token = argmax(refPlain.logits[2]!);
    for (let i = 0; i < 4; i++) {
      const g = await engine.step(token, state);
      const r = await m.engine.step(token, refState);
      expect(maxAbsDiff(g.logits, r.logits)).toBeLessThan(1e-3);
      state = g.state;
      refState = r.state;
      token = argmax(r.logits);
    }
  }, 120_000);

  it('bf16 stays within 5% of the logit range', async () => {
    const engine = CudaEngine.create(m.config, m.weights, { precision: 'bf16' });
    engines.push(engine);
    const ids = randomIds(200, m.config.vocabSize, 2);
    const got = await engine.prefill(ids, { logitPositions: 'all' });
    const ref = await m.engine.prefill(ids, { logitPositions: 'all' });
    const range = Math.max(...ref.logits.flatMap((l) => Array.from(l, Math.abs)));
    got.logits.forEach((l, i) => expect(maxAbsDiff(l, ref.logits[i]!)).toBeLessThan(0.05 * range));
  }, 120_000);
});
