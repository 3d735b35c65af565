// The fused selective scan (engine option scan: 'fused' | 'fused-t2', kernels/scan-fused.cu) on the CPU emulator:
// the reference engine at the kernel's chunk boundaries (1 token, one chunk exactly, one more, several chunks; plain,
// decimating, carried state), the bf16 build against the split path, and prefill CUDA graphs (the golden fixtures run
// on every scan kind in test/cuda-emulator.test.ts). Needs g++; skipped without it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecimationConfig } from '../mamba/engine.ts';
import { buildFakeCuda, haveCxx } from '../mamba/cuda/emulator/build.ts';
import type { CudaEngine as CudaEngineType } from '../mamba/cuda/engine.ts';
import { SPLIT_SCAN_LAUNCHES } from '../mamba/cuda/kernels/manifest.ts';
import { maxAbsDiff, maxStateDiff, randomIds, tempDir, tinyModel, type TinyModel } from './helpers.ts';

const CXX = haveCxx();
const SLOW = process.env.DECISERVE_SLOW_TESTS === '1';
const TOL = 1e-4;
const CHUNK = 256; // both fused kernels' chunk (scan_fused: 32 lanes × 8 steps; scan_fused_t2: 2 warps × 32 × 4)
const KINDS = ['fused', 'fused-t2'] as const;
const KERNEL = { fused: 'scan_fused', 'fused-t2': 'scan_fused_t2' } as const;

let CudaEngine: typeof CudaEngineType;

beforeAll(async () => {
  if (!CXX) return;
  const fake = buildFakeCuda();
  Object.assign(process.env, fake.env, {
    DECISERVE_CUDA_CACHE: tempDir('deciserve-nvrtc-cache-'),
    FAKE_CUDA_TOTAL_MB: '2048',
  });
  ({ CudaEngine } = await import('../mamba/cuda/engine.ts'));
}, 120_000);

const kept = (k: { layer: number; indices: ArrayLike<number> }[]) => k.map((x) => [x.layer, Array.from(x.indices)]);
const maxLogitDiff = (a: Float32Array[], b: Float32Array[]) => Math.max(0, ...a.map((x, i) => maxAbsDiff(x, b[i]!)));

describe.skipIf(!CXX).each(KINDS)('%s scan on the CPU emulator (fp32) against the reference', (kind) => {
  let m: TinyModel;
  let engine: CudaEngineType;
  beforeAll(() => {
    // d_inner 34: the last block's warps past d_inner (8 or 4 channels a block) must stay inactive
    m = tinyModel({ dModel: 17, nLayer: 3, dState: 16, seed: 11 });
    engine = CudaEngine.create(m.config, m.weights, { precision: 'fp32', guardBytes: 256, scan: kind });
  });
  afterAll(async () => engine?.dispose());

  it('is the fused path (one scan kernel per layer, no dt_softplus, no Δ gathers)', async () => {
    expect(engine.name).toBe(`cuda-fp32-${kind}`);
    const device = engine.core.device;
    device.enableProfiler(true);
    try {
      device.profiler!.begin();
      await engine.prefill(randomIds(40, m.config.vocabSize, 1), {
        decimation: { layers: [1], beta: 0.5, lBase: 12, minSeqLen: 4 },
        protect: 2,
      });
      const labels = device.profiler!.collect().map((t) => [t.label, t.calls]);
      const calls = Object.fromEntries(labels);
      expect(calls[KERNEL[kind]]).toBe(3);
      for (const gone of SPLIT_SCAN_LAUNCHES) {
        expect(calls[gone], gone).toBeUndefined();
      }
      expect(calls.delta_score).toBe(1);
      // the host's work around the kernels is charged to its own intervals, not to the first kernel and the head
      expect([calls['host: plan, tables, uploads'], calls['host: status, positions, logit rows']]).toEqual([1, 1]);
    } finally {
      device.enableProfiler(false);
    }
  });

  it('plain prompts at the chunk boundaries: logits at every position and states', async () => {
    for (const n of [1, 2, 7, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 37]) {
      const ids = randomIds(n, m.config.vocabSize, 100 + n);
      const got = await engine.prefill(ids, { logitPositions: 'all' });
      const ref = await m.engine.prefill(ids, { logitPositions: 'all' });
      expect(maxLogitDiff(got.logits, ref.logits), `L=${n}`).toBeLessThan(TOL);
      expect(maxStateDiff(got.state, ref.state), `L=${n}`).toBeLessThan(TOL);
    }
  });

  it('DeciMamba at chunk boundaries: kept rows read in place give the reference kept rows and logits', async () => {
    const cases: [number, DecimationConfig, number][] = [
      [CHUNK + 3, { layers: [1], beta: 0.5, lBase: 40, minSeqLen: 4 }, 3], // kept rows span two chunks
      [2 * CHUNK + 10, { layers: [0, 2], beta: 0.5, lBase: CHUNK, minSeqLen: 4 }, 5], // layer 0 keeps about one chunk
      [90, { layers: [1], beta: 0.5, lBase: 12, minSeqLen: 0 }, 1],
    ];
    for (const [n, decimation, protect] of cases) {
      const ids = randomIds(n, m.config.vocabSize, 200 + n);
      const positions = [n - 1];
      const got = await engine.prefill(ids, { decimation, protect, logitPositions: positions });
      const ref = await m.engine.prefill(ids, { decimation, protect, logitPositions: positions });
      expect(got.kept.length, `L=${n}`).toBeGreaterThan(0);
      expect(kept(got.kept), `L=${n}`).toEqual(kept(ref.kept));
      expect(maxLogitDiff(got.logits, ref.logits), `L=${n}`).toBeLessThan(TOL);
      expect(maxStateDiff(got.state, ref.state), `L=${n}`).toBeLessThan(TOL);
    }
  });

  it('a mixed batch equals the reference one by one; segments carry the state (h0) across passes', async () => {
    const reqs = [
      { ids: randomIds(CHUNK + 20, m.config.vocabSize, 4), options: {} },
      { ids: randomIds(1, m.config.vocabSize, 5), options: {} },
      {
        ids: randomIds(120, m.config.vocabSize, 6),
        options: { decimation: { layers: [0, 1], beta: 0.5, lBase: 20, minSeqLen: 4 }, protect: 2 },
      },
      { ids: randomIds(CHUNK, m.config.vocabSize, 7), options: { logitPositions: [0, CHUNK - 1] } },
    ];
    const batch = await engine.prefillBatch(reqs);
    expect(engine.lastPasses).toHaveLength(1);
    const refs = await m.engine.prefillBatch(reqs);
    reqs.forEach((_, i) => {
      const ref = refs[i]!;
      expect(maxLogitDiff(batch[i]!.logits, ref.logits), `request ${i}`).toBeLessThan(TOL);
      expect(maxStateDiff(batch[i]!.state, ref.state), `request ${i}`).toBeLessThan(TOL);
      expect(kept(batch[i]!.kept)).toEqual(kept(ref.kept));
    });
    const small = CudaEngine.create(m.config, m.weights, {
      precision: 'fp32',
      maxTokensPerPass: CHUNK + 5,
      scan: kind,
    });
    try {
      const ids = randomIds(3 * CHUNK - 11, m.config.vocabSize, 8);
      const positions = [0, CHUNK + 4, CHUNK + 5, 3 * CHUNK - 12];
      const got = await small.prefill(ids, { logitPositions: positions });
      const ref = await m.engine.prefill(ids, { logitPositions: positions });
      expect(small.lastPasses.length).toBe(3);
      expect(maxLogitDiff(got.logits, ref.logits)).toBeLessThan(TOL);
      expect(maxStateDiff(got.state, ref.state)).toBeLessThan(TOL);
    } finally {
      await small.dispose();
    }
  });
});

describe.skipIf(!CXX).each(KINDS)('%s scan on the CPU emulator (bf16) against the split path', (kind) => {
  it('same kept indices as split; logits within the bf16 tolerance of the reference and of split', async () => {
    const m = tinyModel({ dModel: 16, nLayer: 3, dState: 16, seed: 5 });
    const fused = CudaEngine.create(m.config, m.weights, { precision: 'bf16', guardBytes: 256, scan: kind });
    const split = CudaEngine.create(m.config, m.weights, { precision: 'bf16', guardBytes: 256 });
    try {
      const ids = randomIds(CHUNK + 45, m.config.vocabSize, 1);
      const decimation = { layers: [1], beta: 0.5, lBase: 60, minSeqLen: 4 };
      const reqs = [
        { ids, options: { logitPositions: [0, CHUNK - 1, CHUNK, CHUNK + 44] } },
        { ids, options: { decimation, protect: 3, logitPositions: [CHUNK + 43, CHUNK + 44] } },
        { ids: ids.slice(0, 1), options: {} },
      ];
      const [f, s] = [await fused.prefillBatch(reqs), await split.prefillBatch(reqs)];
      const refs = await m.engine.prefillBatch(reqs);
      reqs.forEach((_, i) => {
        const ref = refs[i]!;
        const range = Math.max(...ref.logits.flatMap((l) => Array.from(l, Math.abs)));
        expect(maxLogitDiff(f[i]!.logits, ref.logits), `request ${i} vs reference`).toBeLessThan(0.03 * range);
        expect(maxLogitDiff(f[i]!.logits, s[i]!.logits), `request ${i} vs split`).toBeLessThan(0.03 * range);
        expect(kept(f[i]!.kept)).toEqual(kept(s[i]!.kept));
        // same bf16 inputs, f32 states: the paths differ only in f32 summation order (and the bf16 y it rounds to)
        const scale = Math.max(...s[i]!.state.flatMap((l) => Array.from(l.ssm, Math.abs)));
        // measured 1.3e-7 of the scale
        expect(maxStateDiff(f[i]!.state, s[i]!.state), `request ${i} states vs split`).toBeLessThan(1e-3 * scale);
      });
      expect(f[1]!.kept.length).toBe(1);
    } finally {
      await fused.dispose();
      await split.dispose();
    }
  });
});

// The shipped-model fixtures run on the GPU (device check); tiny-random fits the emulator.
// The PyTorch golden fixtures run on every scan kind in test/cuda-emulator.test.ts.

describe.skipIf(!CXX)('prefill CUDA graphs on the CPU emulator (split and fused scans)', () => {
  it('a shape runs eagerly, is captured the second time, replayed after; the graph reads the new inputs', async () => {
    const m = tinyModel({ dModel: 16, nLayer: 3, dState: 16, seed: 9 });
    for (const scan of ['split', 'fused'] as const) {
      const engine = CudaEngine.create(m.config, m.weights, {
        precision: 'fp32',
        guardBytes: 256,
        scan,
        prefillGraphs: true,
      });
      try {
        const graphs = engine.prefillGraphs!;
        const decimation = { layers: [1], beta: 0.5, lBase: 12, minSeqLen: 4 };
        const shapeOf = (seed: number) => [
          { ids: randomIds(CHUNK + 9, m.config.vocabSize, seed), options: {} },
          { ids: randomIds(70, m.config.vocabSize, seed + 1), options: { decimation, protect: 2 } },
        ];
        for (const [round, seed] of [10, 20, 30, 40].entries()) {
          const reqs = shapeOf(seed); // same shape, new token ids each round
          const got = await engine.prefillBatch(reqs);
          const refs = await m.engine.prefillBatch(reqs);
          reqs.forEach((_, i) => {
            const ref = refs[i]!;
            expect(maxLogitDiff(got[i]!.logits, ref.logits), `${scan} round ${round} request ${i}`).toBeLessThan(TOL);
            expect(maxStateDiff(got[i]!.state, ref.state)).toBeLessThan(TOL);
            expect(kept(got[i]!.kept)).toEqual(kept(ref.kept));
          });
          expect([graphs.captures, graphs.replays], `${scan} round ${round}`).toEqual([
            round >= 1 ? 1 : 0,
            Math.max(0, round - 1),
          ]);
        }
        // another shape starts eagerly again; the first shape's graph is still replayed
        await engine.prefill(randomIds(33, m.config.vocabSize, 50));
        expect([graphs.captures, graphs.replays]).toEqual([1, 2]);
        const again = shapeOf(60);
        const got = await engine.prefillBatch(again);
        expect(graphs.replays).toBe(3);
        expect(maxLogitDiff(got[0]!.logits, (await m.engine.prefill(again[0]!.ids)).logits)).toBeLessThan(TOL);
        expect(graphs.lastError).toBeNull();
        // with the profiler on, the pass runs eagerly so every kernel keeps its own time
        const device = engine.core.device;
        device.enableProfiler(true);
        try {
          device.profiler!.begin();
          await engine.prefillBatch(shapeOf(70));
          const labels = device.profiler!.collect().map((k) => k.label);
          expect(labels).toContain(scan === 'fused' ? 'scan_fused' : 'scan_chunk_output');
          expect(graphs.replays).toBe(3);
        } finally {
          device.enableProfiler(false);
        }
      } finally {
        await engine.dispose();
      }
      expect(engine.core.device.allocatedBytes).toBe(0);
    }
  });
});
