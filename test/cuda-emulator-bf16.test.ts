// The bf16 path (bf16 GEMM operands and activations, f32 accumulation and states) on the CPU emulator, built with
// ACT_BF16=1. d_model 16 gives an odd dt_rank (1), so B/C start at a 2-byte offset and DeciMamba's gather takes its
// 16-bit path. Tolerance: bf16 keeps 8 bits of mantissa, so logits agree to about 1% of their range.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadModel } from '../mamba/checkpoint.ts';
import { keptOverlap, keptUpToTies } from '../mamba/cuda/device-check/parity-metrics.ts';
import type { CudaEngine as CudaEngineType } from '../mamba/cuda/engine.ts';
import { buildFakeCuda, haveCxx } from '../mamba/cuda/emulator/build.ts';
import { replayGoldenCase } from '../mamba/golden-case.ts';
import { prepareModel, referenceTrace } from '../mamba/reference/index.ts';
import { argmax } from '../mamba/sampling.ts';
import { maxAbsDiff, randomIds, tempDir, tinyModel, type TinyModel } from './helpers.ts';

const CXX = haveCxx();
let CudaEngine: typeof CudaEngineType;

beforeAll(async () => {
  if (!CXX) return;
  const fake = buildFakeCuda();
  Object.assign(process.env, fake.env, { DECISERVE_CUDA_CACHE: tempDir('deciserve-nvrtc-cache-') });
  ({ CudaEngine } = await import('../mamba/cuda/engine.ts'));
}, 120_000);

describe.skipIf(!CXX)('CUDA engine on the CPU emulator (bf16)', () => {
  let m: TinyModel;
  let engine: CudaEngineType;
  beforeAll(() => {
    m = tinyModel({ dModel: 16, nLayer: 3, dState: 16, seed: 5 });
    engine = CudaEngine.create(m.config, m.weights, { precision: 'bf16', guardBytes: 256 });
  });
  afterAll(async () => engine?.dispose());

  it('prefill, DeciMamba and steps stay within the bf16 tolerance', async () => {
    expect(engine.name).toBe('cuda-bf16');
    const ids = randomIds(60, m.config.vocabSize, 1);
    const decimation = { layers: [1], beta: 0.5, lBase: 10, minSeqLen: 4 };
    const [plain, deci] = await engine.prefillBatch([
      { ids, options: { logitPositions: 'all' } },
      { ids, options: { decimation, protect: 3, logitPositions: [58, 59] } },
    ]);
    const ref = await m.engine.prefill(ids, { logitPositions: 'all' });
    const refDeci = await m.engine.prefill(ids, { decimation, protect: 3, logitPositions: [58, 59] });
    const range = Math.max(...ref.logits.flatMap((l) => Array.from(l, Math.abs)));
    plain!.logits.forEach((l, i) => expect(maxAbsDiff(l, ref.logits[i]!)).toBeLessThan(0.03 * range));
    deci!.logits.forEach((l, i) => expect(maxAbsDiff(l, refDeci.logits[i]!)).toBeLessThan(0.03 * range));
    expect(deci!.kept.length).toBe(1);
    const step = await engine.step(argmax(plain!.logits[59]!), plain!.state);
    const refStep = await m.engine.step(argmax(ref.logits[59]!), ref.state);
    expect(maxAbsDiff(step.logits, refStep.logits)).toBeLessThan(0.03 * range);
    // the fused decode step (kernels/step-fused.cu) rounds where the prefill's launches round: within the same tolerance
    const fused = engine.openDecode([plain!.state], { fusedStep: true });
    const out = await fused.step([argmax(plain!.logits[59]!)], { logits: true });
    expect(fused.fused).toBe(true);
    expect(maxAbsDiff(out.logits!, refStep.logits)).toBeLessThan(0.03 * range);
    fused.dispose();
  });

  // head_greedy reads the bf16 lm_head itself (its own GEMV, not cuBLAS): each token it picks scores within bf16
  // rounding of the largest logit of the logits head, at one and at four sequences
  it.each([1, 4])('the greedy head picks an argmax of the logits at batch %i', async (batch) => {
    const { vocabSize } = m.config;
    const pre = await engine.prefillBatch(
      Array.from({ length: batch }, (_, i) => ({ ids: randomIds(9 + 4 * i, vocabSize, 30 + i) })),
    );
    const states = pre.map((p) => p.state);
    const withLogits = engine.openDecode(states, { greedyHead: false });
    const greedy = engine.openDecode(states, { greedyHead: true });
    expect(greedy.greedyHead).toBe(true);
    let tokens = pre.map((p) => argmax(p.logits[0]!));
    for (let step = 0; step < 3; step++) {
      const want = await withLogits.step(tokens, { logits: true, argmax: true });
      const got = await greedy.step(tokens, { argmax: true });
      const range = Math.max(...Array.from(want.logits!, Math.abs));
      for (let b = 0; b < batch; b++) {
        const row = want.logits!.subarray(b * vocabSize, (b + 1) * vocabSize);
        expect(row[want.tokens![b]!]! - row[got.tokens![b]!]!).toBeLessThanOrEqual(0.01 * range);
      }
      tokens = Array.from(want.tokens!);
    }
    withLogits.dispose();
    greedy.dispose();
  });
});

// The fused step's bf16 forms against the reference engine over 3 steps, the residual stream carried between layers
// and steps. d_model 256 (k % 128 == 0, tb·k ≤ 2048): the norm reads each residual row once (stage_rmsnorm's one pass,
// 130m's form at batch 1–2) in step_in_proj_conv and head_greedy, at batch 1, 3 and 8. d_model 832: the two passes
// (832 % 128 ≠ 0), and out_proj's 1,664-wide input takes two rounds of its six weight chunks a lane.
describe.skipIf(!CXX)('CUDA engine on the CPU emulator (bf16): the fused step', () => {
  it.each([
    { dModel: 256, batch: 1 },
    { dModel: 256, batch: 3 },
    { dModel: 256, batch: 8 },
    { dModel: 832, batch: 1 },
  ])('d_model $dModel, batch $batch matches the reference over 3 steps', async ({ dModel, batch }) => {
    const m = tinyModel({ dModel, nLayer: 2, dState: 16, seed: 13 });
    const { vocabSize } = m.config;
    const engine = CudaEngine.create(m.config, m.weights, { precision: 'bf16' });
    try {
      const prompts = Array.from({ length: batch }, (_, i) => randomIds(4 + 3 * i, vocabSize, 50 + i));
      const pre = await engine.prefillBatch(prompts.map((ids) => ({ ids })));
      let refStates = await Promise.all(prompts.map(async (ids) => (await m.engine.prefill(ids)).state));
      const fused = engine.openDecode(
        pre.map((p) => p.state),
        { fusedStep: true, greedyHead: false },
      );
      const greedy = engine.openDecode(
        pre.map((p) => p.state),
        { fusedStep: true, greedyHead: true },
      );
      expect([fused.fused, greedy.greedyHead]).toEqual([true, true]);
      let tokens = prompts.map((p) => p[0]!);
      for (let step = 0; step < 3; step++) {
        const out = await fused.step(tokens, { logits: true });
        const picked = await greedy.step(tokens, { argmax: true });
        const refs = await Promise.all(tokens.map((t, b) => m.engine.step(t, refStates[b]!)));
        refs.forEach((r, b) => {
          const range = Math.max(...Array.from(r.logits, Math.abs));
          const got = out.logits!.subarray(b * vocabSize, (b + 1) * vocabSize);
          expect(maxAbsDiff(got, r.logits), `step ${step} sequence ${b}`).toBeLessThan(0.03 * range);
          expect(r.logits[argmax(r.logits)]! - r.logits[picked.tokens![b]!]!).toBeLessThanOrEqual(0.03 * range);
        });
        refStates = refs.map((r) => r.state);
        tokens = refs.map((r) => argmax(r.logits));
      }
      fused.dispose();
      greedy.dispose();
    } finally {
      await engine.dispose();
    }
  });
});

// The device check's bf16 golden gate on the random-weight fixture: its ‖Δ‖ scores are so dense that bf16 swaps tokens
// at the K-th place (the GPU's and this emulator's kept sets agree with each other, 95% with the golden ones, which
// the old fixed 98% share failed); every swap must still be a near-tie of the reference's scores.
describe.skipIf(!CXX)('bf16 kept tokens against the golden fixtures (tiny-random)', () => {
  it('differ from the golden ones only by near-ties of the reference scores', async () => {
    const dir = join(import.meta.dirname, 'fixtures', 'tiny-random');
    const golden = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8'));
    const model = await loadModel(dir);
    const reference = prepareModel(model.config, model.weights);
    const engine = CudaEngine.create(model.config, model.weights, { precision: 'bf16', guardBytes: 256 });
    try {
      const overlaps: number[] = [];
      for (const c of golden.cases.filter((x: { decimation: unknown }) => x.decimation)) {
        const { result } = await replayGoldenCase(engine, c);
        const { scores } = referenceTrace(reference, c.ids, { decimation: c.decimation, protect: c.protect });
        const ties = keptUpToTies(result.kept, c.kept, scores);
        expect(ties.ok, c.name).toBe(true);
        overlaps.push(keptOverlap(result.kept, c.kept));
        // and it fails a choice past the near-ties: the reference's lowest-scored token kept in place of the first
        const first = result.kept[0]!;
        const { positions, scores: s0 } = scores[0]!;
        const far = positions[Array.from(s0).indexOf(Math.min(...Array.from(s0)))]!;
        const swapped = [far, ...Array.from(first.indices).slice(1)].sort((a, b) => a - b);
        const wrong = [{ ...first, indices: swapped }, ...result.kept.slice(1)];
        expect(keptUpToTies(wrong, c.kept, scores).ok, `${c.name} with ${far}`).toBe(false);
      }
      expect(Math.min(...overlaps)).toBeLessThan(0.98);
    } finally {
      await engine.dispose();
    }
  }, 120_000);
});
