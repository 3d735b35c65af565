// The CUDA engine end to end on the CPU emulator (mamba/cuda/emulator: a fake libcuda/libnvrtc/libcublas that runs
// kernels/*.cu on the host): bindings, compile cache, memory plan, batching, DeciMamba and decoding against the
// reference engine and the PyTorch golden fixtures. Needs g++; skipped without it. What it cannot check (GPU races,
// real NVRTC/cuBLAS, speed) is the device check's job (mamba/cuda/device-check.ts).
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecimationConfig, ModelState } from '../mamba/engine.ts';
import { buildFakeCuda, haveCxx } from '../mamba/cuda/emulator/build.ts';
import type { CudaEngine as CudaEngineType } from '../mamba/cuda/engine.ts';
import type { ScanKind } from '../mamba/cuda/mixer.ts';
import type { ScanCarry } from '../mamba/cuda/ops-scan.ts';
import { loadModel } from '../mamba/checkpoint.ts';
import { replayGoldenCase } from '../mamba/golden-case.ts';
import { readSafetensors } from '../mamba/safetensors.ts';
import { argmax } from '../mamba/sampling.ts';
import { maxAbsDiff, maxStateDiff, randomIds, tempDir, tinyModel, type TinyModel } from './helpers.ts';

const ROOT = resolve(import.meta.dirname, '..');
const CXX = haveCxx();
const SLOW = process.env.DECISERVE_SLOW_TESTS === '1';
const TOL = 1e-4;

let CudaEngine: typeof CudaEngineType;
let CudaError: typeof import('../mamba/cuda/bindings/errors.ts').CudaError;

beforeAll(async () => {
  if (!CXX) return;
  const fake = buildFakeCuda();
  Object.assign(process.env, fake.env, {
    DECISERVE_CUDA_CACHE: tempDir('deciserve-nvrtc-cache-'),
    FAKE_CUDA_TOTAL_MB: '2048',
  });
  ({ CudaEngine } = await import('../mamba/cuda/engine.ts'));
  ({ CudaError } = await import('../mamba/cuda/bindings/errors.ts'));
}, 120_000);

function maxLogitDiff(a: Float32Array[], b: Float32Array[]): number {
  expect(a.length).toBe(b.length);
  return Math.max(0, ...a.map((x, i) => maxAbsDiff(x, b[i]!)));
}

const DECI: DecimationConfig = { layers: [1], beta: 0.5, lBase: 12, minSeqLen: 4 };

describe.skipIf(!CXX)('CUDA engine on the CPU emulator (fp32)', () => {
  let m: TinyModel;
  let engine: CudaEngineType;
  beforeAll(() => {
    m = tinyModel({ dModel: 16, nLayer: 3, dState: 16, seed: 7 });
    engine = CudaEngine.create(m.config, m.weights, { precision: 'fp32', guardBytes: 256 });
  });
  afterAll(async () => engine?.dispose());

  it('prefill matches the reference: every position, states', async () => {
    const ids = randomIds(70, m.config.vocabSize, 1);
    const got = await engine.prefill(ids, { logitPositions: 'all' });
    const ref = await m.engine.prefill(ids, { logitPositions: 'all' });
    expect(maxLogitDiff(got.logits, ref.logits)).toBeLessThan(TOL);
    expect(maxStateDiff(got.state, ref.state)).toBeLessThan(TOL);
    expect(got.kept).toEqual([]);
  });

  it('prompts shorter than d_conv and single tokens', async () => {
    for (const n of [1, 2, 3]) {
      const ids = randomIds(n, m.config.vocabSize, 10 + n);
      const got = await engine.prefill(ids);
      const ref = await m.engine.prefill(ids);
      expect(maxLogitDiff(got.logits, ref.logits)).toBeLessThan(TOL);
      expect(maxStateDiff(got.state, ref.state)).toBeLessThan(TOL);
    }
  });

  it('DeciMamba: same kept indices, logits and states (one and two decimating layers, ties)', async () => {
    const ids = randomIds(90, m.config.vocabSize, 2);
    const tied = Array.from({ length: 90 }, (_, i) => [5, 9, 5, 9, 5, 9, 5, 9][i % 8]!); // repeated windows: exact score ties
    for (const [input, decimation, protect] of [
      [ids, DECI, 3],
      [ids, { layers: [0, 2], beta: 0.5, lBase: 30, minSeqLen: 4 }, 5],
      [ids, { layers: [1], beta: 0.5, lBase: 12, minSeqLen: 0 }, 1],
      [tied, { layers: [0], beta: 0.5, lBase: 12, minSeqLen: 4 }, 2], // layer 0: identical 4-token windows give identical Δ rows
    ] as [number[], DecimationConfig, number][]) {
      const positions = [input.length - 2, input.length - 1].filter((p) => p >= input.length - protect);
      const got = await engine.prefill(input, { decimation, protect, logitPositions: positions });
      const ref = await m.engine.prefill(input, { decimation, protect, logitPositions: positions });
      expect(got.kept.map((k) => [k.layer, Array.from(k.indices)])).toEqual(
        ref.kept.map((k) => [k.layer, Array.from(k.indices)]),
      );
      expect(got.kept.length).toBeGreaterThan(0);
      expect(maxLogitDiff(got.logits, ref.logits)).toBeLessThan(TOL);
      expect(maxStateDiff(got.state, ref.state)).toBeLessThan(TOL);
    }
  });

  it('a dropped position is an input error, like the reference', async () => {
    const ids = randomIds(60, m.config.vocabSize, 3);
    await expect(engine.prefill(ids, { decimation: DECI, protect: 1, logitPositions: [0, 59] })).rejects.toThrow(
      /decimation dropped/,
    );
  });

  it('a batch of mixed lengths and decimation settings equals the sequences one by one', async () => {
    const reqs = [
      { ids: randomIds(33, m.config.vocabSize, 4), options: {} },
      {
        ids: randomIds(80, m.config.vocabSize, 5),
        options: { decimation: DECI, protect: 4, logitPositions: [78, 79] },
      },
      { ids: randomIds(5, m.config.vocabSize, 6), options: { decimation: DECI, protect: 1 } },
      {
        ids: randomIds(64, m.config.vocabSize, 7),
        options: { decimation: { layers: [0, 1], beta: 0.5, lBase: 20, minSeqLen: 4 }, protect: 2 },
      },
      { ids: randomIds(17, m.config.vocabSize, 8), options: { logitPositions: 'all' as const } },
    ];
    const batch = await engine.prefillBatch(reqs);
    expect(engine.lastPasses).toHaveLength(1);
    const refs = await m.engine.prefillBatch(reqs);
    reqs.forEach((_, i) => {
      const ref = refs[i]!;
      expect(batch[i]!.positions).toEqual(ref.positions);
      expect(maxLogitDiff(batch[i]!.logits, ref.logits)).toBeLessThan(TOL);
      expect(maxStateDiff(batch[i]!.state, ref.state)).toBeLessThan(TOL);
      expect(batch[i]!.kept.map((k) => [k.layer, Array.from(k.indices)])).toEqual(
        ref.kept.map((k) => [k.layer, Array.from(k.indices)]),
      );
    });
  });

  it('settled batches report bad requests in place and run the rest', async () => {
    const good = randomIds(20, m.config.vocabSize, 9);
    const out = await engine.prefillBatchSettled([{ ids: [] }, { ids: good }, { ids: [m.config.vocabSize] }]);
    expect(out[0]).toBeInstanceOf(Error);
    expect(out[2]).toBeInstanceOf(Error);
    expect(
      maxLogitDiff((out[1] as { logits: Float32Array[] }).logits, (await m.engine.prefill(good)).logits),
    ).toBeLessThan(TOL);
  });

  it('log-probabilities on the device match log-softmax of the reference logits', async () => {
    const ids = randomIds(25, m.config.vocabSize, 11);
    const [lp, plain] = await engine.prefillBatch([
      { ids, logProbs: true, options: { logitPositions: [3, 24] } },
      { ids, options: { logitPositions: [3, 24] } },
    ]);
    for (const [row, logits] of plain!.logits.entries()) {
      const max = Math.max(...logits);
      const logZ = max + Math.log(logits.reduce((s, v) => s + Math.exp(v - max), 0));
      expect(
        maxAbsDiff(
          lp!.logits[row]!,
          logits.map((v) => v - logZ),
        ),
      ).toBeLessThan(1e-4);
    }
  });

  it('steps (graph-captured after the first) follow the reference; states stay plain values', async () => {
    const ids = randomIds(30, m.config.vocabSize, 12);
    let got = await engine.prefill(ids);
    let ref = await m.engine.prefill(ids);
    let gs: ModelState = got.state;
    let rs: ModelState = ref.state;
    const early: ModelState[] = [];
    for (let i = 0; i < 6; i++) {
      const token = argmax(ref.logits[0] ?? ref.logits[ref.logits.length - 1]!);
      const g = await engine.step(token, gs);
      const r = await m.engine.step(token, rs);
      expect(maxAbsDiff(g.logits, r.logits)).toBeLessThan(TOL);
      early.push(gs);
      gs = g.state;
      rs = r.state;
      got = { ...got, logits: [g.logits] };
      ref = { ...ref, logits: [r.logits] };
    }
    expect(maxStateDiff(gs, rs)).toBeLessThan(TOL);
    // an old state still steps to the same result (steps never modify their input state)
    const again = await engine.step(3, early[2]!);
    const again2 = await engine.step(3, early[2]!);
    expect(maxAbsDiff(again.logits, again2.logits)).toBe(0);
  });

  // the fused step (≤8 sequences), a batch too large for it (the prefill's launches), and those launches asked for;
  // ssm_step_dt four sequences a thread in one partial tile and in 4 + 4 + 3, two in 2 · 5 + 1; with the L2 prefetch's arguments (the
  // emulator checks that its ranges are device memory; the prefetch itself is a GPU hint), the last layer's reaching
  // into the head (the whole of this small one)
  it.each([
    { batch: 3, fusedStep: true, fused: true, ssmSeqs: 1, l2Prefetch: false, head: false },
    { batch: 3, fusedStep: true, fused: true, ssmSeqs: 1, l2Prefetch: true, head: false },
    { batch: 3, fusedStep: true, fused: true, ssmSeqs: 1, l2Prefetch: true, head: true },
    { batch: 11, fusedStep: true, fused: false, ssmSeqs: 1, l2Prefetch: false, head: false },
    { batch: 3, fusedStep: false, fused: false, ssmSeqs: 1, l2Prefetch: false, head: false },
    { batch: 3, fusedStep: false, fused: false, ssmSeqs: 4, l2Prefetch: false, head: false },
    { batch: 11, fusedStep: false, fused: false, ssmSeqs: 2, l2Prefetch: false, head: false },
    { batch: 11, fusedStep: false, fused: false, ssmSeqs: 4, l2Prefetch: true, head: true },
  ] as const)(
    'a decode session steps a batch of sequences at once: $batch, fused $fusedStep, ssm_step_dt $ssmSeqs a thread, L2 prefetch $l2Prefetch (head $head)',
    async (c) => {
      const prompts = Array.from({ length: c.batch }, (_, i) =>
        randomIds([12, 40, 3][i % 3]! + i, m.config.vocabSize, 13 + i),
      );
      const pre = await engine.prefillBatch(prompts.map((ids) => ({ ids })));
      const session = engine.openDecode(
        pre.map((p) => p.state),
        { fusedStep: c.fusedStep, ssmSeqs: c.ssmSeqs, l2Prefetch: c.l2Prefetch, l2PrefetchHead: c.head },
      );
      expect([session.fused, session.ssmSeqs, session.l2Prefetch]).toEqual([c.fused, c.ssmSeqs, c.l2Prefetch]);
      const { vocabSize, dModel } = m.config;
      expect(session.headPrefetchBytes).toBe(c.head ? vocabSize * dModel * 4 : 0);
      let refStates = (await m.engine.prefillBatch(prompts.map((ids) => ({ ids })))).map((p) => p.state);
      let tokens = pre.map((p) => argmax(p.logits[0]!));
      for (let step = 0; step < 4; step++) {
        const out = await session.step(tokens, { logits: true, argmax: true });
        const refs = await Promise.all(tokens.map((t, b) => m.engine.step(t, refStates[b]!)));
        refs.forEach((r, b) =>
          expect(
            maxAbsDiff(out.logits!.subarray(b * m.config.vocabSize, (b + 1) * m.config.vocabSize), r.logits),
          ).toBeLessThan(TOL),
        );
        expect(Array.from(out.tokens!)).toEqual(refs.map((r) => argmax(r.logits)));
        refStates = refs.map((r) => r.state);
        tokens = Array.from(out.tokens!);
      }
      expect(session.usesGraph).toBe(true);
      // the states the steps left on the device are the reference's
      refStates.forEach((r, b) => expect(maxStateDiff(session.state(b), r)).toBeLessThan(TOL));
      session.dispose();
    },
  );

  // stepGreedy feeds each step's argmax to the next on the device: the same rows as greedy steps one at a time (with
  // the logits kept), from the first steps (eager, then captured) and from a replayed graph; a plain step after it
  // still takes its own tokens. greedyHead: the steps end in head_greedy (no logits) instead.
  it.each([
    { fusedStep: true, greedyHead: false },
    { fusedStep: false, greedyHead: false },
    { fusedStep: true, greedyHead: true },
    { fusedStep: false, greedyHead: true },
  ])('stepGreedy = greedy steps one at a time (fused $fusedStep, greedy head $greedyHead)', async (c) => {
    const prompts = [randomIds(20, m.config.vocabSize, 5), randomIds(33, m.config.vocabSize, 6)];
    const pre = await engine.prefillBatch(prompts.map((ids) => ({ ids })));
    const first = pre.map((p) => argmax(p.logits[0]!));
    const states = pre.map((p) => p.state);
    const one = engine.openDecode(states, { fusedStep: c.fusedStep });
    const many = engine.openDecode(states, { fusedStep: c.fusedStep, greedyHead: c.greedyHead });
    expect(many.greedyHead).toBe(c.greedyHead);
    const expected: number[] = [];
    let tokens: number[] = first;
    for (let i = 0; i < 7; i++) {
      tokens = Array.from((await one.step(tokens, { logits: true, argmax: true })).tokens!);
      expected.push(...tokens);
    }
    const a = await many.stepGreedy(first, 3);
    const b = await many.stepGreedy(a.subarray(4, 6), 4);
    expect([...a, ...b]).toEqual(expected);
    expect(many.usesGraph).toBe(true);
    const [x, y] = [await one.step([5, 9], { argmax: true }), await many.step([5, 9], { argmax: true })];
    expect(Array.from(y.tokens!)).toEqual(Array.from(x.tokens!));
    // a step that wants the logits runs the logits head on the same session, then greedy steps go on as before
    const z = await many.step(Array.from(y.tokens!), { logits: true, argmax: true });
    const w = await one.step(Array.from(x.tokens!), { logits: true, argmax: true });
    expect(maxAbsDiff(z.logits!, w.logits!)).toBe(0);
    expect(Array.from(await many.stepGreedy(z.tokens!, 2))).toEqual(Array.from(await one.stepGreedy(w.tokens!, 2)));
    await expect(many.stepGreedy(first, 9)).rejects.toThrow(RangeError);
    one.dispose();
    many.dispose();
  });

  // head_greedy against the logits and argmax_rows: every batch it takes (1–8; 9 runs the logits head), the same
  // tokens and the same states after; the row blocks outnumber the emulator's 4 "SMs" and the last one is partial
  it.each([1, 3, 8, 9])('greedy head = argmax of the logits at batch %i', async (batch) => {
    const prompts = Array.from({ length: batch }, (_, i) => randomIds(7 + 5 * i, m.config.vocabSize, 60 + i));
    const pre = await engine.prefillBatch(prompts.map((ids) => ({ ids })));
    const states = pre.map((p) => p.state);
    const withLogits = engine.openDecode(states, { greedyHead: false });
    const greedy = engine.openDecode(states, { greedyHead: true });
    expect(greedy.greedyHead).toBe(batch <= 8);
    let tokens = pre.map((p) => argmax(p.logits[0]!));
    for (let step = 0; step < 3; step++) {
      const want = await withLogits.step(tokens, { logits: true, argmax: true });
      const got = await greedy.step(tokens, { argmax: true });
      const rows = Array.from({ length: batch }, (_, b) =>
        argmax(want.logits!.subarray(b * m.config.vocabSize, (b + 1) * m.config.vocabSize)),
      );
      expect(Array.from(got.tokens!)).toEqual(rows);
      expect(Array.from(got.tokens!)).toEqual(Array.from(want.tokens!));
      tokens = rows;
    }
    for (let b = 0; b < batch; b++) expect(maxStateDiff(greedy.state(b), withLogits.state(b))).toBe(0);
    withLogits.dispose();
    greedy.dispose();
  });

  // ties go to the lower id across blocks and NaN never wins, as argmax_rows: an untied lm_head of zeros with a NaN row 0
  it('greedy head breaks ties to the lower id and skips NaN, as argmax_rows does', async () => {
    const u = tinyModel({ dModel: 16, nLayer: 2, dState: 16, seed: 9, untied: true });
    u.weights.lmHead.data.fill(0);
    u.weights.lmHead.data.fill(Number.NaN, 0, u.config.dModel);
    const e = CudaEngine.create(u.config, u.weights, { precision: 'fp32' });
    try {
      const states = [e.emptyState(), e.emptyState(), e.emptyState()];
      const greedy = e.openDecode(states, { greedyHead: true });
      const plain = e.openDecode(states, { greedyHead: false });
      for (let i = 0; i < 2; i++) {
        expect(Array.from((await greedy.step([3, 4, 5], { argmax: true })).tokens!)).toEqual([1, 1, 1]);
        expect(Array.from((await plain.step([3, 4, 5], { argmax: true })).tokens!)).toEqual([1, 1, 1]);
      }
      greedy.dispose();
      plain.dispose();
    } finally {
      await e.dispose();
    }
  });

  // step.cu and step-fused.cu split a channel's state over 4 lanes at d_state 16; other sizes take 1, 2 or 8 lanes
  it.each([2, 8, 32])('decode steps match the reference at d_state %i, fused and not', async (dState) => {
    buildFakeCuda([{ actBf16: false, dState, dConv: 4 }]);
    const small = tinyModel({ dModel: 16, nLayer: 2, dState, seed: 17 });
    const eng = CudaEngine.create(small.config, small.weights, { precision: 'fp32' });
    try {
      const prompts = [randomIds(9, small.config.vocabSize, 3), randomIds(21, small.config.vocabSize, 4)];
      const pre = await eng.prefillBatch(prompts.map((ids) => ({ ids })));
      for (const [fusedStep, ssmSeqs] of [
        [true, 1],
        [false, 1],
        [false, 4],
      ] as const) {
        const session = eng.openDecode(
          pre.map((p) => p.state),
          { fusedStep, ssmSeqs },
        );
        expect(session.fused).toBe(fusedStep);
        let refStates = (await small.engine.prefillBatch(prompts.map((ids) => ({ ids })))).map((p) => p.state);
        let tokens = [5, 7];
        for (let step = 0; step < 3; step++) {
          const out = await session.step(tokens, { logits: true });
          const refs = await Promise.all(tokens.map((t, b) => small.engine.step(t, refStates[b]!)));
          const v = small.config.vocabSize;
          refs.forEach((r, b) =>
            expect(maxAbsDiff(out.logits!.subarray(b * v, (b + 1) * v), r.logits)).toBeLessThan(TOL),
          );
          refStates = refs.map((r) => r.state);
          tokens = tokens.map((t) => (t * 3 + 1) % v);
        }
        refStates.forEach((r, b) =>
          expect(maxStateDiff(session.state(b), r), `fused ${fusedStep}, ${ssmSeqs} a thread`).toBeLessThan(TOL),
        );
        session.dispose();
      }
    } finally {
      await eng.dispose();
    }
  });

  it('a profiled graph session times each replay inside the graph and steps as an unprofiled one', async () => {
    const ids = randomIds(20, m.config.vocabSize, 21);
    const state = (await engine.prefill(ids)).state;
    const device = engine.core.device;
    const plain = engine.openDecode([state]);
    device.enableProfiler(true);
    const profiled = engine.openDecode([state]);
    expect([profiled.fused, profiled.programmatic]).toEqual([true, true]);
    try {
      let [a, b] = [[5], [5]];
      const totals: number[] = [];
      for (let step = 0; step < 4; step++) {
        a = Array.from((await plain.step(a, { argmax: true })).tokens!);
        b = Array.from((await profiled.step(b, { argmax: true })).tokens!);
        expect(b).toEqual(a);
        const times = device.profiler!.read();
        const labels = Object.fromEntries(times.map((t) => [t.label, t.calls]));
        // step 1 is eager, the later ones replay the graph: both mark every launch once per step (a session of one
        // takes the fused step by default, as programmatic launches: the emulator is sm_90)
        expect(labels).toMatchObject({ final_norm: 1, step_dt_ssm: m.config.nLayer, argmax: 1 });
        expect(times.every((t) => t.ms >= 0)).toBe(true);
        totals.push(times.reduce((s, t) => s + t.ms, 0));
      }
      // every replay recorded the events again (a captured plain record would leave step 1's times in place)
      expect(new Set(totals).size).toBe(totals.length);
      expect(profiled.usesGraph).toBe(true);
    } finally {
      profiled.dispose();
      plain.dispose();
      device.enableProfiler(false);
    }
  });

  it('generateBatch gives every job the tokens generate() gives it alone', async () => {
    const { generateBatch } = await import('../mamba/generate.ts');
    const { generate } = await import('../mamba/generate.ts');
    const jobs = [
      { ids: randomIds(20, m.config.vocabSize, 31), options: { maxTokens: 6 } },
      {
        ids: randomIds(50, m.config.vocabSize, 32),
        options: { maxTokens: 9, temperature: 0.9, topK: 20, seed: 5, decimation: DECI, protect: 3 },
      },
      { ids: randomIds(7, m.config.vocabSize, 33), options: { maxTokens: 0 } },
      { ids: randomIds(30, m.config.vocabSize, 34), options: { maxTokens: 12, temperature: 1.2, topP: 0.8, seed: 9 } },
      { ids: [], options: {} },
    ];
    const ref = m.engine;
    const expected = [];
    for (const j of jobs.slice(0, 4)) expected.push(await generate(ref, null, j.ids, j.options));
    // a stop id taken from job 0's own output ends it early, as it would alone
    const stopJob = { ids: jobs[0]!.ids, options: { maxTokens: 6, stopTokenIds: [expected[0]!.tokens[2]!] } };
    const expectedStop = await generate(ref, null, stopJob.ids, stopJob.options);
    const got = await generateBatch(engine, null, [...jobs, stopJob]);
    expected.forEach((e, i) => {
      const g = got[i] as typeof e;
      expect(g.tokens, `job ${i}`).toEqual(e.tokens);
      expect(g.finishReason).toBe(e.finishReason);
      expect(g.kept.map((k) => Array.from(k.indices))).toEqual(e.kept.map((k) => Array.from(k.indices)));
    });
    expect(got[4]).toBeInstanceOf(Error);
    expect((got[5] as typeof expectedStop).tokens).toEqual(expectedStop.tokens);
    expect((got[5] as typeof expectedStop).finishReason).toBe('eos');
  });

  // all greedy: generation takes GREEDY_AHEAD steps at a time on the device (stepGreedy) and checks stops after;
  // the tokens, and where each job stops, are the reference's step by step
  it('greedy generateBatch through stepGreedy gives the reference tokens and stops', async () => {
    const { generate, generateBatch } = await import('../mamba/generate.ts');
    const jobs = [
      { ids: randomIds(20, m.config.vocabSize, 41), options: { maxTokens: 11, stopTokenIds: [] } },
      { ids: randomIds(35, m.config.vocabSize, 42), options: { maxTokens: 3, stopTokenIds: [] } },
      { ids: randomIds(9, m.config.vocabSize, 43), options: { maxTokens: 17, stopTokenIds: [] } },
    ];
    const expected = [];
    for (const j of jobs) expected.push(await generate(m.engine, null, j.ids, j.options));
    // a stop id from job 2's own output, met inside a run of greedy steps, ends it there
    const stopJob = { ids: jobs[2]!.ids, options: { maxTokens: 17, stopTokenIds: [expected[2]!.tokens[5]!] } };
    const expectedStop = await generate(m.engine, null, stopJob.ids, stopJob.options);
    const got = await generateBatch(engine, null, [...jobs, stopJob]);
    [...expected, expectedStop].forEach((e, i) => {
      const g = got[i] as typeof e;
      expect([g.tokens, g.finishReason], `job ${i}`).toEqual([e.tokens, e.finishReason]);
    });
    expect((got[3] as typeof expectedStop).finishReason).toBe('eos');
  });

  it('plain prompts longer than a pass are split into segments that carry the state', async () => {
    const small = CudaEngine.create(m.config, m.weights, { precision: 'fp32', maxTokensPerPass: 24, guardBytes: 256 });
    try {
      const ids = randomIds(61, m.config.vocabSize, 16);
      const got = await small.prefill(ids, { logitPositions: [0, 23, 24, 47, 60] });
      const ref = await m.engine.prefill(ids, { logitPositions: [0, 23, 24, 47, 60] });
      expect(small.lastPasses.length).toBe(3);
      expect(maxLogitDiff(got.logits, ref.logits)).toBeLessThan(TOL);
      expect(maxStateDiff(got.state, ref.state)).toBeLessThan(TOL);
      // DeciMamba needs the whole prompt in one pass: refused with a clear error, not run halfway
      await expect(small.prefill(ids, { decimation: DECI, protect: 2 })).rejects.toThrow(
        /DeciMamba prompt of 61 tokens/,
      );
    } finally {
      await small.dispose();
    }
  });

  it('memory: a pass over the budget is refused before launch; device errors name the call', async () => {
    const tight = CudaEngine.create(m.config, m.weights, { precision: 'fp32', memoryBudgetBytes: 1 << 20 });
    try {
      const ids = randomIds(2000, m.config.vocabSize, 17);
      const res = await tight.prefillBatchSettled([{ ids, options: { decimation: DECI } }]);
      expect((res[0] as Error).message).toMatch(/needs [\d.]+ GiB of device memory/);
      expect(tight.core.device.allocatedBytes).toBeLessThan(64 << 20);
    } finally {
      await tight.dispose();
    }
    expect(() => engine.core.device.alloc(64 * 2 ** 30)).toThrowError(CudaError);
    expect(() => engine.core.device.alloc(64 * 2 ** 30)).toThrow(
      /cuMemAlloc\(\d+ bytes\) failed: CUDA_ERROR_OUT_OF_MEMORY \(2\): out of memory/,
    );
  });

  it('dispose frees every device allocation', async () => {
    const e = CudaEngine.create(m.config, m.weights, { precision: 'fp32' });
    const before = e.core.device.allocatedBytes;
    const r = await e.prefill(randomIds(40, m.config.vocabSize, 18));
    await e.step(1, r.state);
    expect(e.core.device.allocatedBytes).toBeGreaterThan(before);
    await e.dispose();
    expect(e.core.device.allocatedBytes).toBe(0);
  });
});

// d_model 152 (d_inner 304): a block of in_proj rows holds x's last 16 channels and z's first 16, step_dt_ssm's last
// block is a quarter full, out_proj's last block half; 520: out_proj's input (1,040 wide) stages 7 sequences at a
// time, so a batch of 8 takes two tiles; 832: step_dt_ssm adds 52 blocks' partial sums, 18 a thread, so its loads go
// in two rounds (16, then 2 and 14 past the end)
describe.skipIf(!CXX)('CUDA engine on the CPU emulator: wider models decode on the fused step', () => {
  it.each([
    { dModel: 152, batch: 2 },
    { dModel: 520, batch: 8 },
    { dModel: 832, batch: 1 },
  ])('d_model $dModel, batch $batch matches the reference over 3 steps', async ({ dModel, batch }) => {
    const m = tinyModel({ dModel, nLayer: 2, dState: 16, seed: 11 });
    const engine = CudaEngine.create(m.config, m.weights, { precision: 'fp32' });
    try {
      const prompts = Array.from({ length: batch }, (_, i) => randomIds(5 + 3 * i, m.config.vocabSize, 40 + i));
      const pre = await engine.prefillBatch(prompts.map((ids) => ({ ids })));
      let refStates = pre.map((p) => p.state);
      // launched as programmatic dependents (cuLaunchKernelEx; the emulator runs them in order and checks the config)
      const session = engine.openDecode(refStates, { fusedStep: true, programmatic: true });
      expect([session.fused, session.programmatic]).toEqual([true, true]);
      let tokens = prompts.map((p) => p[0]!);
      for (let step = 0; step < 3; step++) {
        const out = await session.step(tokens, { logits: true });
        const refs = await Promise.all(tokens.map((t, b) => m.engine.step(t, refStates[b]!)));
        refs.forEach((r, b) => {
          const got = out.logits!.subarray(b * m.config.vocabSize, (b + 1) * m.config.vocabSize);
          expect(maxAbsDiff(got, r.logits)).toBeLessThan(TOL);
        });
        refStates = refs.map((r) => r.state);
        tokens = refs.map((r) => argmax(r.logits));
      }
      refStates.forEach((r, b) => expect(maxStateDiff(session.state(b), r)).toBeLessThan(TOL));
      session.dispose();
    } finally {
      await engine.dispose();
    }
  });
});

describe.skipIf(!CXX)('CUDA engine on the CPU emulator: projection biases and an untied head', () => {
  it.each([false, true])('matches the reference (fused decode step: %s)', async (fusedStep) => {
    const m = tinyModel({ dModel: 16, nLayer: 2, dState: 16, seed: 3, biases: true, untied: true });
    const engine = CudaEngine.create(m.config, m.weights, { precision: 'fp32', fusedStep });
    try {
      const ids = randomIds(40, m.config.vocabSize, 21);
      const got = await engine.prefill(ids, { decimation: DECI, protect: 3, logitPositions: [38, 39] });
      const ref = await m.engine.prefill(ids, { decimation: DECI, protect: 3, logitPositions: [38, 39] });
      expect(maxLogitDiff(got.logits, ref.logits)).toBeLessThan(TOL);
      const g = await engine.step(4, got.state);
      expect(maxAbsDiff(g.logits, (await m.engine.step(4, ref.state)).logits)).toBeLessThan(TOL);
    } finally {
      await engine.dispose();
    }
  });
});

// prelude.cuh decay_exp2_fma: 2^v as a polynomial on the FMA pipe, as exact as the exp unit (a coefficient off by
// 5e-5 moved these states by 4e-6)
describe.skipIf(!CXX)('CUDA engine on the CPU emulator: scan decays on the FMA pipe', () => {
  it('every decay on the FMA pipe stays within 1e-6 of the reference over 700 steps, as the exp unit does', async () => {
    buildFakeCuda([{ actBf16: false, dState: 16, dConv: 4, scanFmaExp: 16 }]);
    const m = tinyModel({ dModel: 16, nLayer: 3, dState: 16, seed: 7 });
    const ids = randomIds(700, m.config.vocabSize, 1);
    const ref = await m.engine.prefill(ids, { logitPositions: 'all' });
    for (const scanFmaExp of [0, 16]) {
      const engine = CudaEngine.create(m.config, m.weights, { precision: 'fp32', scanChunk: 64, scanFmaExp });
      try {
        const got = await engine.prefill(ids, { logitPositions: 'all' });
        expect(maxLogitDiff(got.logits, ref.logits), `scanFmaExp ${scanFmaExp}`).toBeLessThan(1e-6);
        expect(maxStateDiff(got.state, ref.state), `scanFmaExp ${scanFmaExp}`).toBeLessThan(1e-6);
      } finally {
        await engine.dispose();
      }
    }
  }, 120_000);

  it('a count outside 0..d_state is an input error', () => {
    const m = tinyModel({ dModel: 16, nLayer: 1, dState: 16, seed: 7 });
    for (const scanFmaExp of [-1, 17, 2.5])
      expect(() => CudaEngine.create(m.config, m.weights, { scanFmaExp })).toThrow(/scanFmaExp must be an integer/);
  });
});

// test/fixtures/tiny-random (4 layers, d_model 64, d_state 16) fits the emulator build; the shipped model's cases run
// on the GPU in the device check.
const TINY = join(ROOT, 'test', 'fixtures', 'tiny-random');
// every prefill scan: the split kernels (with Δ formed in the first pass or not, and staged), both fused ones
// (kernels/scan-fused.cu), and both with decays
// on the FMA pipe (prelude.cuh decay_exp2_fma: split with some states on each unit, fused with all on the FMA pipe)
const SCANS: { label: string; scan: ScanKind; scanFmaExp?: number; scanCarry?: ScanCarry }[] = [
  { label: 'split', scan: 'split' },
  { label: 'split-softplus', scan: 'split-softplus' },
  { label: 'split-softplus, serial carry', scan: 'split-softplus', scanCarry: 'serial' },
  { label: 'split-staged', scan: 'split-staged' },
  { label: 'fused', scan: 'fused' },
  { label: 'fused-t2', scan: 'fused-t2' },
  { label: 'split, 6 of 16 decays on the FMA pipe', scan: 'split', scanFmaExp: 6 },
  { label: 'fused-t2, every decay on the FMA pipe', scan: 'fused-t2', scanFmaExp: 16 },
];
describe.skipIf(!CXX || !existsSync(join(TINY, 'golden.json'))).each(SCANS)(
  'CUDA engine on the CPU emulator, $label scan: PyTorch golden fixtures (tiny-random)',
  ({ scan, scanFmaExp, scanCarry }) => {
    beforeAll(() => {
      if (scanFmaExp) buildFakeCuda([{ actBf16: false, dState: 16, dConv: 4, scanFmaExp }]);
    }, 120_000);
    const golden = existsSync(join(TINY, 'golden.json'))
      ? JSON.parse(readFileSync(join(TINY, 'golden.json'), 'utf8'))
      : { cases: [] };
    for (const c of golden.cases as {
      name: string;
      ids: number[];
      protect: number;
      decimation: DecimationConfig | null;
      positions: number[];
      kept: unknown;
      greedy: number[];
    }[]) {
      const slow = c.ids.length > 1000 && c.decimation === null;
      it.skipIf(slow && !SLOW)(
        `${c.name}: logits ≤1e-3, kept indices, states, 8 greedy tokens`,
        async () => {
          const model = await loadModel(TINY);
          const tensors = readSafetensors(readFileSync(join(TINY, 'golden.safetensors')));
          const options = { precision: 'fp32', guardBytes: 256, scan, scanFmaExp, scanCarry } as const;
          const engine = CudaEngine.create(model.config, model.weights, options);
          try {
            const { result: r, greedy } = await replayGoldenCase(engine, c);
            const V = model.config.vocabSize;
            const g = tensors.getF32(`${c.name}.logits`);
            c.positions.forEach((_, row) =>
              expect(maxAbsDiff(r.logits[row]!, g.subarray(row * V, (row + 1) * V))).toBeLessThanOrEqual(1e-3),
            );
            expect(r.kept.map((k) => ({ layer: k.layer, indices: Array.from(k.indices) }))).toEqual(c.kept);
            for (let i = 0; i < model.config.nLayer; i++) {
              expect(maxAbsDiff(r.state[i]!.conv, tensors.getF32(`${c.name}.conv.${i}`))).toBeLessThanOrEqual(1e-3);
              expect(maxAbsDiff(r.state[i]!.ssm, tensors.getF32(`${c.name}.ssm.${i}`))).toBeLessThanOrEqual(1e-3);
            }
            expect(greedy).toEqual(c.greedy);
          } finally {
            await engine.dispose();
          }
        },
        120_000,
      );
    }
  },
);
