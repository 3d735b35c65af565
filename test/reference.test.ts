// The reference forward pass: prefill ≡ step, decode continuing from (decimated) prefill states, decimation dropping tokens.
import { describe, expect, it } from 'vitest';
import type { DecimationConfig, LayerState, ModelState } from '../mamba/engine.ts';
import { prepareModel, referenceTrace } from '../mamba/reference/forward.ts';
import { mambaMixer } from '../mamba/reference/mixer.ts';
import { columns, linear } from '../mamba/reference/ops.ts';
import { maxAbsDiff, maxStateDiff, randomIds, tinyModel } from './helpers.ts';

const CONFIGS = [
  { name: 'd16 L2 N4 K4 tied', opts: { dModel: 16, nLayer: 2, dState: 4, dConv: 4, expand: 2, seed: 1 } },
  {
    name: 'd24 L3 N8 K3 expand1 untied',
    opts: { dModel: 24, nLayer: 3, dState: 8, dConv: 3, expand: 1, untied: true, seed: 2 },
  },
  {
    name: 'd40 L2 N2 K2 dtRank3 biases',
    opts: { dModel: 40, nLayer: 2, dState: 2, dConv: 2, expand: 2, seed: 3, biases: true },
  },
];

async function stepThrough(engine: ReturnType<typeof tinyModel>['engine'], ids: number[], state: ModelState) {
  const logits: Float32Array[] = [];
  for (const id of ids) {
    const r = await engine.step(id, state);
    logits.push(r.logits);
    state = r.state;
  }
  return { logits, state };
}

describe('prefill ≡ step by step', () => {
  for (const { name, opts } of CONFIGS) {
    it(name, async () => {
      const { engine, config } = tinyModel(opts);
      const ids = randomIds(23, config.vocabSize, 7);
      const prefill = await engine.prefill(ids, { logitPositions: 'all' });
      const steps = await stepThrough(engine, ids, engine.emptyState());
      expect(prefill.positions).toEqual(ids.map((_, i) => i));
      for (let t = 0; t < ids.length; t++)
        expect(maxAbsDiff(prefill.logits[t]!, steps.logits[t]!)).toBeLessThanOrEqual(1e-5);
      expect(maxStateDiff(prefill.state, steps.state)).toBeLessThanOrEqual(1e-5);
    });
  }

  it('returns logits only at the requested positions, in the requested order', async () => {
    const { engine, config } = tinyModel();
    const ids = randomIds(10, config.vocabSize, 3);
    const all = await engine.prefill(ids, { logitPositions: 'all' });
    const some = await engine.prefill(ids, { logitPositions: [7, 2] });
    expect(some.positions).toEqual([7, 2]);
    expect(some.logits[0]).toEqual(all.logits[7]);
    expect(some.logits[1]).toEqual(all.logits[2]);
    const last = await engine.prefill(ids);
    expect(last.positions).toEqual([9]);
    expect(last.kept).toEqual([]);
  });

  it('rejects bad input clearly', async () => {
    const { engine, config } = tinyModel();
    await expect(engine.prefill([])).rejects.toThrow(/empty/);
    await expect(engine.prefill([config.vocabSize])).rejects.toThrow(/outside the vocabulary/);
    await expect(engine.prefill([1, 2], { logitPositions: [2] })).rejects.toThrow(/position 2/);
    await expect(engine.step(1, [])).rejects.toThrow(/state has 0 layers/);
  });
});

describe('decoding after prefill', () => {
  it('without active decimation (L ≤ K): prefill + decode ≡ one prefill of the whole sequence', async () => {
    const { engine, config } = tinyModel({ nLayer: 3, seed: 5 });
    const ids = randomIds(30, config.vocabSize, 11);
    const decimation: DecimationConfig = { layers: [1], beta: 0.5, lBase: 2000, minSeqLen: 20 };
    const prompt = ids.slice(0, 20);
    const pre = await engine.prefill(prompt, { decimation, protect: 1 });
    expect(pre.kept).toEqual([]); // a decimating layer that dropped nothing is not reported
    const decoded = await stepThrough(engine, ids.slice(20), pre.state);
    const whole = await engine.prefill(ids, { logitPositions: 'all' });
    expect(maxAbsDiff(pre.logits[0]!, whole.logits[19]!)).toBeLessThanOrEqual(1e-5);
    decoded.logits.forEach((l, j) => expect(maxAbsDiff(l, whole.logits[20 + j]!)).toBeLessThanOrEqual(1e-5));
    expect(maxStateDiff(decoded.state, whole.state)).toBeLessThanOrEqual(1e-5);
  });

  it("with active decimation: states are the decimating layer's pre-decimation conv inputs and later layers' own scans", async () => {
    const { engine, config, weights } = tinyModel({ nLayer: 3, dConv: 4, seed: 6 });
    const { dInner, dConv, dState } = config;
    const model = prepareModel(config, weights);
    const ids = randomIds(40, config.vocabSize, 12);
    const decimation: DecimationConfig = { layers: [1], beta: 0.5, lBase: 10, minSeqLen: 4 };
    const protect = 5;
    const traced = referenceTrace(model, ids, { decimation, protect });
    expect(traced.kept).toHaveLength(1);
    const kept = traced.kept[0]!.indices;
    expect(kept.length).toBe(10 + protect);
    expect(Array.from(kept.slice(-protect))).toEqual([35, 36, 37, 38, 39]);

    // Decimating layer 1: its conv state is the last d_conv pre-conv inputs x of the FULL sequence (rows 36..39).
    const u1 = traced.mixerInputs[1]!;
    expect(u1.length).toBe(ids.length * config.dModel);
    const x1 = columns(
      linear(u1, ids.length, weights.layers[1]!.inProj.data, 2 * dInner),
      ids.length,
      2 * dInner,
      0,
      dInner,
    );
    for (let c = 0; c < dInner; c++) {
      for (let k = 0; k < dConv; k++)
        expect(traced.state[1]!.conv[c * dConv + k]).toBe(x1[(ids.length - dConv + k) * dInner + c]);
    }

    // Layer 2 sees only the kept tokens: stepping its mixer over its (kept) inputs reproduces its conv and ssm state.
    const u2 = traced.mixerInputs[2]!;
    expect(Array.from(traced.layerPositions[2]!)).toEqual(Array.from(kept));
    let state: LayerState = { conv: new Float32Array(dInner * dConv), ssm: new Float32Array(dInner * dState) };
    for (let r = 0; r < kept.length; r++) {
      const row = u2.subarray(r * config.dModel, (r + 1) * config.dModel);
      state = mambaMixer(model.layers[2]!, config, row, 1, state).state;
    }
    expect(maxAbsDiff(state.conv, traced.state[2]!.conv)).toBeLessThanOrEqual(1e-6);
    expect(maxAbsDiff(state.ssm, traced.state[2]!.ssm)).toBeLessThanOrEqual(1e-6);

    // Decoding continues from exactly those states: step ≡ a plain step from traced.state.
    const next = randomIds(3, config.vocabSize, 13);
    const fromPrefill = await stepThrough(engine, next, traced.state);
    const plain = await engine.prefill(ids, { logitPositions: 'all' });
    const fromPlain = await stepThrough(engine, next, plain.state);
    expect(maxAbsDiff(fromPrefill.logits[0]!, fromPlain.logits[0]!)).toBeGreaterThan(1e-6); // decimation changed the state
  });
});

describe('decimation drops tokens from later layers', () => {
  it('with d_conv = 1 and decimation at layer 0, a decimated prefill ≡ a plain prefill over the kept tokens', async () => {
    // With no temporal mixing before the scan, the only effect of dropping tokens at layer 0 is that no layer ever sees them.
    const { engine, config } = tinyModel({ nLayer: 3, dConv: 1, seed: 8 });
    const ids = randomIds(50, config.vocabSize, 21);
    const protect = 6;
    const decimation: DecimationConfig = { layers: [0], beta: 0.5, lBase: 12, minSeqLen: 2 };
    const tail = Array.from({ length: protect }, (_, j) => 50 - protect + j);
    const deci = await engine.prefill(ids, { decimation, protect, logitPositions: tail });
    const kept = Array.from(deci.kept[0]!.indices);
    expect(kept).toHaveLength(12 + protect);
    const plain = await engine.prefill(
      kept.map((i) => ids[i]!),
      { logitPositions: tail.map((_, j) => kept.length - protect + j) },
    );
    deci.logits.forEach((l, j) => expect(maxAbsDiff(l, plain.logits[j]!)).toBeLessThanOrEqual(1e-6));
    expect(maxStateDiff(deci.state, plain.state)).toBeLessThanOrEqual(1e-6);
    // ...and it is not a no-op: the full sequence gives different logits.
    const full = await engine.prefill(ids);
    expect(maxAbsDiff(full.logits[0]!, deci.logits[protect - 1]!)).toBeGreaterThan(1e-6);
  });

  it('K shrinks by β at each decimating layer and kept indices are original positions', async () => {
    const { engine, config } = tinyModel({ nLayer: 4, seed: 9 });
    const ids = randomIds(80, config.vocabSize, 4);
    const decimation: DecimationConfig = { layers: [0, 2, 3], beta: 0.5, lBase: 40, minSeqLen: 8 };
    const r = await engine.prefill(ids, { decimation, protect: 3 });
    expect(r.kept.map((k) => k.layer)).toEqual([0, 2, 3]);
    expect(r.kept.map((k) => k.indices.length)).toEqual([40 + 3, 20 + 3, 10 + 3]);
    for (let s = 1; s < r.kept.length; s++) {
      const earlier = new Set(r.kept[s - 1]!.indices);
      expect(Array.from(r.kept[s]!.indices).every((i) => earlier.has(i))).toBe(true);
    }
    for (const k of r.kept) expect(Array.from(k.indices.slice(-3))).toEqual([77, 78, 79]);
    await expect(engine.prefill(ids, { decimation, protect: 1, logitPositions: [77] })).rejects.toThrow(/dropped/);
    await expect(engine.prefill(ids, { decimation: { ...decimation, layers: [4] } })).rejects.toThrow(/not a layer/);
  });
});
