// The staged split scan (engine option scan: 'split-staged', kernels/scan-staged.cu) on the CPU emulator. Its passes
// do scan.cu's arithmetic in scan.cu's order and only take their operands from shared memory, so its logits, states
// and kept rows must equal split-softplus's bit for bit, and the reference's within the fp32 tolerance. The shapes
// cover a partial last channel block, B/C rows whose 16-byte copies are aligned and ones that are not (the element
// fallback), chunks that end mid-stage and chunks of many stages, plain and decimating prompts, a carried state and a
// mixed batch. The golden fixtures run on every scan kind in test/cuda-emulator.test.ts. Needs g++; skipped without it.
import { describe, expect, it } from 'vitest';
import type { PrefillOptions } from '../mamba/engine.ts';
import { CXX, emulatedCudaEngine, keptRows as kept, maxLogitDiff } from './cuda-emulator-setup.ts';
import { maxStateDiff, randomIds, tinyModel } from './helpers.ts';

const TOL = 1e-4;
const CudaEngine = emulatedCudaEngine([{ actBf16: true, dState: 4, dConv: 4 }]);

// dModel 17: d_inner 34 (a partial channel block), dt_rank 2 (B at an 8-byte offset: element copies);
// dModel 120: d_inner 240 (two blocks, the second partial), dt_rank 8 (every row 16-byte aligned in bf16)
const SHAPES = [
  { dModel: 17, dState: 16, precision: 'fp32' },
  { dModel: 120, dState: 16, precision: 'fp32' },
  { dModel: 120, dState: 16, precision: 'bf16' },
  { dModel: 17, dState: 16, precision: 'bf16' },
  { dModel: 16, dState: 4, precision: 'bf16' },
] as const;

describe.skipIf(!CXX).each(SHAPES)(
  'split-staged scan on the CPU emulator, d_model $dModel d_state $dState $precision',
  (s) => {
    it('equals split-softplus bit for bit (plain, DeciMamba, chunks ending mid-stage, a mixed batch, segments)', async () => {
      const m = tinyModel({ dModel: s.dModel, nLayer: 3, dState: s.dState, seed: 7 });
      const V = m.config.vocabSize;
      for (const scanChunk of [21, 64]) {
        const make = (scan: 'split-softplus' | 'split-staged') =>
          CudaEngine().create(m.config, m.weights, { precision: s.precision, guardBytes: 256, scan, scanChunk });
        const staged = make('split-staged');
        const split = make('split-softplus');
        try {
          const dec = { layers: [1], beta: 0.5, lBase: 30, minSeqLen: 4 };
          const reqs: { ids: number[]; options: PrefillOptions }[] = [
            { ids: randomIds(1, V, 1), options: {} },
            { ids: randomIds(scanChunk + 5, V, 2), options: { logitPositions: 'all' } },
            { ids: randomIds(150, V, 3), options: { decimation: dec, protect: 3 } },
            { ids: randomIds(97, V, 4), options: { logitPositions: [0, 50, 96] } },
          ];
          for (const r of reqs) {
            const a = await staged.prefill(r.ids, r.options);
            const b = await split.prefill(r.ids, r.options);
            expect(a.logits, `L=${r.ids.length} chunk ${scanChunk}`).toEqual(b.logits);
            expect(a.state, `L=${r.ids.length} chunk ${scanChunk}`).toEqual(b.state);
            expect(kept(a.kept)).toEqual(kept(b.kept));
            if (s.precision === 'fp32') {
              const ref = await m.engine.prefill(r.ids, r.options);
              expect(maxLogitDiff(a.logits, ref.logits)).toBeLessThan(TOL);
              expect(maxStateDiff(a.state, ref.state)).toBeLessThan(TOL);
              expect(kept(a.kept)).toEqual(kept(ref.kept));
            }
          }
          const batchA = await staged.prefillBatch(reqs);
          const batchB = await split.prefillBatch(reqs);
          batchA.forEach((r, i) => {
            expect(r.logits, `batch request ${i}`).toEqual(batchB[i]!.logits);
            expect(r.state, `batch request ${i}`).toEqual(batchB[i]!.state);
          });
        } finally {
          await staged.dispose();
          await split.dispose();
        }
        // a plain prompt longer than a pass runs in segments, each pass's scan starting from the carried state (h0)
        const segmented = (scan: 'split-softplus' | 'split-staged') =>
          CudaEngine().create(m.config, m.weights, { precision: s.precision, scan, scanChunk, maxTokensPerPass: 50 });
        const [sa, sb] = [segmented('split-staged'), segmented('split-softplus')];
        try {
          const ids = randomIds(120, V, 9);
          const a = await sa.prefill(ids, { logitPositions: [0, 60, 119] });
          const b = await sb.prefill(ids, { logitPositions: [0, 60, 119] });
          expect(sa.lastPasses.length).toBe(3);
          expect(a.logits).toEqual(b.logits);
          expect(a.state).toEqual(b.state);
        } finally {
          await sa.dispose();
          await sb.dispose();
        }
      }
    }, 240_000);

    it('runs the staged passes, not scan.cu’s', async () => {
      const m = tinyModel({ dModel: s.dModel, nLayer: 2, dState: s.dState, seed: 3 });
      const engine = CudaEngine().create(m.config, m.weights, { precision: s.precision, scan: 'split-staged' });
      const device = engine.core.device;
      device.enableProfiler(true);
      try {
        device.profiler!.begin();
        await engine.prefill(randomIds(40, m.config.vocabSize, 1), {});
        const calls = Object.fromEntries(device.profiler!.collect().map((t) => [t.label, t.calls]));
        expect([calls.scan_chunk_state_staged, calls.scan_chunk_output_staged, calls.scan_carry]).toEqual([2, 2, 2]);
        expect([calls.scan_chunk_state, calls.scan_chunk_output, calls.dt_softplus]).toEqual([
          undefined,
          undefined,
          undefined,
        ]);
      } finally {
        device.enableProfiler(false);
        await engine.dispose();
      }
    });
  },
);

describe.skipIf(!CXX)('split-staged scan options', () => {
  it('refuses a stage shape the kernels do not build, before compiling anything', () => {
    const m = tinyModel({ dModel: 16, nLayer: 1, dState: 16 });
    for (const scanStage of [
      { steps: 5, stages: 3 },
      { steps: 8, stages: 1 },
      { steps: 8, stages: 2.5 },
      { steps: 32, stages: 2 },
    ])
      expect(() => CudaEngine().create(m.config, m.weights, { scan: 'split-staged', scanStage })).toThrow(
        /scanStage must be 4, 8 or 16 steps × 2\.\.4 stages/,
      );
    // the output pass's ring must fit 48 KB of static shared memory (ptxas refuses 16 × 2 in f32: 53 KB)
    expect(() => CudaEngine().create(m.config, m.weights, { scanStage: { steps: 16, stages: 2 } })).toThrow(
      /at most 24 rows in the ring in fp32/,
    );
    expect(() =>
      CudaEngine().create(m.config, m.weights, { precision: 'bf16', scanStage: { steps: 16, stages: 3 } }),
    ).toThrow(/at most 32 rows in the ring in bf16/);
  });
});
