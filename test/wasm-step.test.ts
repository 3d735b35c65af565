// The WASM SIMD engine (mamba/wasm) against the reference engine: fp32 within 1e-4 on logits and state, int8
// (per-row weights, i16 activations) within the KL budget (#16: mean KL ≤ 0.005 over all positions of the
// peer bench's 256-token prompt), and the state-handle rules (resident handle, copy-in, stale handle).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, type Checkpoint } from '../mamba/checkpoint.ts';
import { EngineInputError, type ModelState } from '../mamba/engine.ts';
import { haystackText } from '../mamba/passkey.ts';
import { ReferenceEngine } from '../mamba/reference/index.ts';
import { argmax } from '../mamba/sampling.ts';
import { quantizeRows } from '../mamba/wasm/engine.ts';
import { createWasmEngineNode } from '../mamba/wasm/node.ts';
import { klDivergence, maxAbsDiff, maxStateDiff, randomIds, tinyModel } from './helpers.ts';

const TOL = 1e-4;
const SHIPPED = join(import.meta.dirname, '..', 'models', 'deciserve-mamba');

describe('WASM SIMD step engine, tiny random models (odd sizes: scalar tails)', () => {
  for (const seed of [3, 11]) {
    it(`fp32 prefill-by-steps and 12 steps match the reference (seed ${seed})`, async () => {
      const model = tinyModel({ seed, dModel: 20 }); // dInner 40, dt_rank 2: K and rows not multiples of 4/16
      const wasm = await createWasmEngineNode(model.config, model.weights);
      const ids = randomIds(20, model.config.vocabSize, seed);
      const [r, w] = [
        await model.engine.prefill(ids.slice(0, 8), { logitPositions: 'all' }),
        await wasm.prefill(ids.slice(0, 8), { logitPositions: 'all' }),
      ];
      r.logits.forEach((l, i) => expect(maxAbsDiff(l, w.logits[i]!)).toBeLessThanOrEqual(TOL));
      let [rs, ws] = [r.state, w.state];
      for (const t of ids.slice(8)) {
        const [a, b] = [await model.engine.step(t, rs), await wasm.step(t, ws)];
        expect(maxAbsDiff(a.logits, b.logits)).toBeLessThanOrEqual(TOL);
        expect(maxStateDiff(a.state, b.state)).toBeLessThanOrEqual(TOL);
        [rs, ws] = [a.state, b.state];
      }
    });
  }

  it("takes another engine's state, refuses stale handles and bad input", async () => {
    const model = tinyModel({ seed: 5 });
    const wasm = await createWasmEngineNode(model.config, model.weights);
    const ref = await model.engine.prefill(randomIds(9, model.config.vocabSize, 7));
    const a = await model.engine.step(3, ref.state);
    const b = await wasm.step(3, ref.state); // copied in
    expect(maxAbsDiff(a.logits, b.logits)).toBeLessThanOrEqual(TOL);
    const g = await wasm.stepGreedy(4, b.state); // resident: no copy
    const c = await model.engine.step(4, a.state);
    expect(g.token).toBe(argmax(c.logits));
    expect(maxStateDiff(c.state, g.state)).toBeLessThanOrEqual(TOL);
    // b.state was stepped from and never read: its memory has moved on, so reading or stepping from it throws.
    expect(() => b.state[0]!.conv).toThrow(/stepped from since/);
    await expect(wasm.step(1, b.state)).rejects.toThrow(/stepped from since/);
    // A state read before stepping on stays usable (it is a copy).
    const d = await wasm.step(5, g.state);
    const kept: ModelState = d.state.map((s) => ({ conv: s.conv, ssm: s.ssm }));
    await wasm.step(6, d.state);
    const [again, refAgain] = [
      await wasm.step(6, kept),
      await model.engine.step(6, (await model.engine.step(5, c.state)).state),
    ];
    expect(maxAbsDiff(again.logits, refAgain.logits)).toBeLessThanOrEqual(TOL);
    await expect(wasm.step(model.config.vocabSize, kept)).rejects.toThrow(EngineInputError);
    await expect(wasm.step(1, kept.slice(1))).rejects.toThrow(/state has 1 layers/);
    await expect(wasm.prefill([])).rejects.toThrow(EngineInputError);
    // Position 0 or 1 is dropped (one of the two context tokens is kept): asking for its logits is the caller's error.
    const drops = { decimation: { layers: [0], beta: 0.5, lBase: 1, minSeqLen: 1 }, logitPositions: [0, 1, 2] };
    await expect(wasm.prefill([1, 2, 3], drops)).rejects.toThrow(EngineInputError);
  });

  it('quantizes rows symmetrically to int8 with one scale per row', () => {
    const { q, scales } = quantizeRows(Float32Array.of(1, -0.75, 0.25, 0, 0, 0), 2);
    expect(Array.from(q)).toEqual([127, -95, 32, 0, 0, 0]);
    expect(scales[0]).toBeCloseTo(1 / 127, 9);
    expect(scales[1]).toBe(1); // an all-zero row keeps a harmless scale
  });
});

describe('WASM SIMD step engine, the shipped model', () => {
  let ckpt: Checkpoint;
  let ids: number[];
  let reference: Awaited<ReturnType<ReferenceEngine['prefill']>>;
  beforeAll(async () => {
    ckpt = await loadCheckpoint(SHIPPED);
    // The peer bench's logit check (bench/peers/run.ts): the haystack's first 256 tokens.
    const text = haystackText(readFileSync(join(SHIPPED, 'haystack.txt'), 'utf8')).slice(0, 4000);
    ids = ckpt.tokenizer.encode(text).slice(0, 256);
    reference = await new ReferenceEngine(ckpt.config, ckpt.weights).prefill(ids, { logitPositions: 'all' });
  }, 120_000); // the TS reference over 256 tokens: seconds, more on a loaded machine

  it('fp32: every position within 1e-4 of the reference; greedy steps agree', async () => {
    const wasm = await createWasmEngineNode(ckpt.config, ckpt.weights, { precision: 'fp32' });
    const out = await wasm.prefill(ids, { logitPositions: 'all' });
    const worst = Math.max(...reference.logits.map((l, i) => maxAbsDiff(l, out.logits[i]!)));
    expect(worst).toBeLessThanOrEqual(TOL);
    const ref = new ReferenceEngine(ckpt.config, ckpt.weights);
    let [rs, ws, token] = [reference.state, out.state, argmax(reference.logits.at(-1)!)];
    for (let i = 0; i < 8; i++) {
      const a = await ref.step(token, rs);
      const g = await wasm.stepGreedy(token, ws);
      expect(g.token).toBe(argmax(a.logits));
      [rs, ws, token] = [a.state, g.state, g.token];
    }
    expect(maxStateDiff(rs, ws)).toBeLessThanOrEqual(TOL);
  });

  it('int8: mean KL over all 256 positions ≤ 0.005', async () => {
    const wasm = await createWasmEngineNode(ckpt.config, ckpt.weights, { precision: 'int8' });
    const out = await wasm.prefill(ids, { logitPositions: 'all' });
    const meanKl = reference.logits.reduce((s, l, i) => s + klDivergence(l, out.logits[i]!), 0) / ids.length;
    expect(meanKl).toBeLessThanOrEqual(0.005);
    expect(meanKl).toBeGreaterThan(0); // it really is quantized
    // 6.3M int8 weights held as i16 (12.6 MB) + scales and a 1,024-row prompt buffer, not the 25 MB of fp32 weights
    expect(wasm.memoryBytes).toBeLessThan(17 * 2 ** 20);
  });
});
