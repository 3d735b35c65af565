// A decode step's every layer in one launch (engine option persistentStep, kernels/step-layers.cu) on the CPU
// emulator: the same logits, tokens and states, bit for bit, as the fused step's three launches a layer, for batches
// of 1, 3 and 8, an even and an odd number of layers (the residual stream ends in either buffer of its pair), with
// and without projection biases, in fp32 and bf16; eagerly and from the captured graph; greedy steps through
// head_greedy; with and without the L2 prefetch's arguments. The emulator has no cooperative launch, so step_layers
// runs on one block that takes every stage's work in turn (its grid barriers pass at once); the GPU's many-block
// barrier is the device check's (bench.ts checkFusedStep). Needs g++; skipped without it.
import { describe, expect, it } from 'vitest';
import { argmax } from '../mamba/sampling.ts';
import { CXX, emulatedCudaEngine } from './cuda-emulator-setup.ts';
import { maxAbsDiff, maxStateDiff, randomIds, tinyModel } from './helpers.ts';

const CudaEngine = emulatedCudaEngine();

describe.skipIf(!CXX)('persistent decode step (step_layers) on the CPU emulator', () => {
  it.each([
    { precision: 'fp32', nLayer: 3, biases: false, l2Prefetch: false },
    { precision: 'fp32', nLayer: 2, biases: true, l2Prefetch: true },
    { precision: 'bf16', nLayer: 3, biases: true, l2Prefetch: true },
  ] as const)(
    'equals the fused step bit for bit: $precision, $nLayer layers, biases $biases, L2 prefetch $l2Prefetch',
    async (c) => {
      const m = tinyModel({ dModel: 24, nLayer: c.nLayer, dState: 16, seed: 31, biases: c.biases });
      const V = m.config.vocabSize;
      const engine = CudaEngine().create(m.config, m.weights, { precision: c.precision });
      try {
        for (const batch of [1, 3, 8]) {
          const prompts = Array.from({ length: batch }, (_, i) => randomIds(5 + 7 * i, V, 40 + i));
          const pre = await engine.prefillBatch(prompts.map((ids) => ({ ids })));
          const states = pre.map((p) => p.state);
          const fused = engine.openDecode(states, { fusedStep: true, persistentStep: false });
          // the prefetch's ranges must be device memory (the emulator checks; on a GPU it is only a hint)
          const persistent = engine.openDecode(states, { persistentStep: true, l2Prefetch: c.l2Prefetch });
          try {
            expect([fused.persistent, persistent.persistent, persistent.fused]).toEqual([false, true, true]);
            expect(persistent.l2Prefetch).toBe(c.l2Prefetch);
            let tokens = pre.map((p) => argmax(p.logits[0]!));
            for (let step = 0; step < 4; step++) {
              const want = await fused.step(tokens, { logits: true, argmax: true });
              const got = await persistent.step(tokens, { logits: true, argmax: true });
              expect(maxAbsDiff(got.logits!, want.logits!), `batch ${batch} step ${step}`).toBe(0);
              expect(Array.from(got.tokens!)).toEqual(Array.from(want.tokens!));
              tokens = Array.from(want.tokens!);
            }
            expect(persistent.usesGraph).toBe(true);
            for (let b = 0; b < batch; b++) expect(maxStateDiff(persistent.state(b), fused.state(b))).toBe(0);
          } finally {
            fused.dispose();
            persistent.dispose();
          }
        }
      } finally {
        await engine.dispose();
      }
    },
  );

  it('greedy steps end in head_greedy and match the reference engine', async () => {
    const m = tinyModel({ dModel: 16, nLayer: 3, dState: 16, seed: 5 });
    const V = m.config.vocabSize;
    const engine = CudaEngine().create(m.config, m.weights, { precision: 'fp32' });
    try {
      const prompts = [randomIds(9, V, 1), randomIds(4, V, 2)];
      const pre = await engine.prefillBatch(prompts.map((ids) => ({ ids })));
      const session = engine.openDecode(
        pre.map((p) => p.state),
        { persistentStep: true, greedyHead: true },
      );
      expect([session.persistent, session.greedyHead]).toEqual([true, true]);
      let refStates = (await m.engine.prefillBatch(prompts.map((ids) => ({ ids })))).map((p) => p.state);
      let tokens = pre.map((p) => argmax(p.logits[0]!));
      const expected: number[] = [];
      for (let i = 0; i < 5; i++) {
        const refs = await Promise.all(tokens.map((t, b) => m.engine.step(t, refStates[b]!)));
        refStates = refs.map((r) => r.state);
        tokens = refs.map((r) => argmax(r.logits));
        expected.push(...tokens);
      }
      const first = pre.map((p) => argmax(p.logits[0]!));
      expect(Array.from(await session.stepGreedy(first, 5))).toEqual(expected);
      refStates.forEach((r, b) => expect(maxStateDiff(session.state(b), r)).toBeLessThan(1e-4));
      session.dispose();
    } finally {
      await engine.dispose();
    }
  });
});
