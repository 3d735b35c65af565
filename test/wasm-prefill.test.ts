// The WASM engine's own prefill (#16: blocked matmuls, the scan carried across blocks and segments, DeciMamba
// scored and kept in WASM) against the TypeScript reference (fp32: every logit and state within 1e-4, kept indices
// identical) and the PyTorch golden fixtures (the shared fixture check: logits, kept indices, states, greedy tokens);
// int8 within the KL budget. Prompts cross block (32) and segment (2,048) boundaries.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, loadModel, type Checkpoint } from '../mamba/checkpoint.ts';
import type { DecimationConfig, PrefillOptions, PrefillResult } from '../mamba/engine.ts';
import { haystackText } from '../mamba/passkey.ts';
import { ReferenceEngine } from '../mamba/reference/index.ts';
import { argmax } from '../mamba/sampling.ts';
import { createWasmEngineNode } from '../mamba/wasm/node.ts';
import { CASE_TIMEOUT_MS, discoverFixtures, expectGoldenParity } from './golden-fixtures.ts';
import { klDivergence, maxAbsDiff, maxStateDiff, randomIds, tinyModel } from './helpers.ts';

const TOL = 1e-4;
const SHIPPED = join(import.meta.dirname, '..', 'models', 'deciserve-mamba');

function expectSameAsReference(ref: PrefillResult, got: PrefillResult): void {
  expect(got.positions).toEqual(ref.positions);
  expect(got.kept.map((k) => [k.layer, Array.from(k.indices)])).toEqual(
    ref.kept.map((k) => [k.layer, Array.from(k.indices)]),
  );
  ref.logits.forEach((l, i) => expect(maxAbsDiff(l, got.logits[i]!), `logits ${i}`).toBeLessThanOrEqual(TOL));
  expect(maxStateDiff(ref.state, got.state)).toBeLessThanOrEqual(TOL);
}

describe('WASM prefill, tiny random models', () => {
  // Two decimating layers of four, a budget that drops most tokens, a 3-token protected tail.
  const decimation: DecimationConfig = { layers: [1, 2], beta: 0.5, lBase: 40, minSeqLen: 4 };
  for (const [seed, length] of [
    [3, 101],
    [8, 2100], // a plain prompt of two segments
  ] as const) {
    it(`fp32, ${length} tokens: plain and DeciMamba match the reference, and the state steps on (seed ${seed})`, async () => {
      const model = tinyModel({ seed, dModel: 20, nLayer: 4 }); // dt_rank 2, vocab not a multiple of 4: scalar tails
      const wasm = await createWasmEngineNode(model.config, model.weights);
      const ids = randomIds(length, model.config.vocabSize, seed);
      const cases: PrefillOptions[] = [
        { logitPositions: [0, 31, 32, 33, length - 1, 5] },
        { decimation, protect: 3, logitPositions: [length - 3, length - 1] },
      ];
      for (const options of cases) {
        const [ref, got] = [await model.engine.prefill(ids, options), await wasm.prefill(ids, options)];
        if (options.decimation) expect(ref.kept.length).toBe(2); // both layers dropped tokens
        // The step continues from the prefill's state where it lies and agrees with the reference; step() leaves its
        // input readable (the contract), so the prefill's state is compared after it.
        const [a, b] = [await model.engine.step(7, ref.state), await wasm.step(7, got.state)];
        expect(maxAbsDiff(a.logits, b.logits)).toBeLessThanOrEqual(TOL);
        expectSameAsReference(ref, got);
      }
    }, 120_000);
  }

  it('refuses a logit position that decimation dropped, and bad input, as EngineInputError', async () => {
    const model = tinyModel({ seed: 4 });
    const wasm = await createWasmEngineNode(model.config, model.weights);
    const ids = randomIds(60, model.config.vocabSize, 4);
    const options = { decimation: { layers: [1], beta: 0.5, lBase: 10, minSeqLen: 2 }, logitPositions: 'all' as const };
    await expect(model.engine.prefill(ids, options)).rejects.toThrow(/decimation dropped/);
    await expect(wasm.prefill(ids, options)).rejects.toThrow(/decimation dropped/);
    await expect(wasm.prefill([1, model.config.vocabSize])).rejects.toThrow(/outside the vocabulary/);
    await expect(wasm.prefill(ids, { logitPositions: [60] })).rejects.toThrow(/outside \[0, 60\)/);
    // The engine still works after refusing.
    const [ref, got] = [await model.engine.prefill(ids), await wasm.prefill(ids)];
    expectSameAsReference(ref, got);
  });
});

describe('WASM prefill, the shipped model', () => {
  let ckpt: Checkpoint;
  let ids: number[];
  const decimation: DecimationConfig = { layers: [6], beta: 0.5, lBase: 200, minSeqLen: 20 };
  const options: PrefillOptions = { decimation, protect: 8, logitPositions: 'last' };
  let reference: PrefillResult;
  beforeAll(async () => {
    ckpt = await loadCheckpoint(SHIPPED);
    const text = haystackText(readFileSync(join(SHIPPED, 'haystack.txt'), 'utf8')).slice(0, 8000);
    ids = ckpt.tokenizer.encode(text).slice(0, 700);
    reference = await new ReferenceEngine(ckpt.config, ckpt.weights).prefill(ids, options);
  }, 300_000); // the TS reference over 700 tokens: seconds, more on a loaded machine

  it('fp32 DeciMamba (700 → 208 tokens at layer 6): logits, state and kept indices as the reference', async () => {
    const wasm = await createWasmEngineNode(ckpt.config, ckpt.weights, { precision: 'fp32' });
    const got = await wasm.prefill(ids, options);
    expect(reference.kept[0]!.indices.length).toBe(208);
    expectSameAsReference(reference, got);
  });

  it('int8 DeciMamba: KL ≤ 0.005 at the last position, nearly the same tokens kept', async () => {
    const wasm = await createWasmEngineNode(ckpt.config, ckpt.weights, { precision: 'int8' });
    const got = await wasm.prefill(ids, options);
    expect(klDivergence(reference.logits[0]!, got.logits[0]!)).toBeLessThanOrEqual(0.005);
    const kept = new Set(reference.kept[0]!.indices);
    const same = Array.from(got.kept[0]!.indices).filter((i) => kept.has(i)).length;
    expect(same / kept.size).toBeGreaterThan(0.95);
    expect(argmax(got.logits[0]!)).toBe(argmax(reference.logits[0]!));
  });
});

describe('WASM prefill vs the PyTorch golden fixtures', () => {
  const fixtures = discoverFixtures();
  for (const fixture of fixtures) {
    for (const c of fixture.cases) {
      it(
        `${fixture.name}/${c.name}: logits, kept indices, states, greedy tokens`,
        async () => {
          const { config, weights } = await loadModel(fixture.checkpointDir);
          await expectGoldenParity(await createWasmEngineNode(config, weights), fixture, c);
        },
        CASE_TIMEOUT_MS,
      );
    }
  }

  it(`found the fixtures (${fixtures.length})`, () => {
    expect(fixtures.length).toBeGreaterThan(0);
  });
});
