// Host-side logic of the CUDA engine, no GPU needed: batch packing and the per-sequence K schedule, scan chunks,
// the packed device tables, the memory plan, pass scheduling, NVRTC cache keys, kernel argument packing, roofline.
import { describe, expect, it } from 'vitest';
import { keptRows } from '../mamba/decimation.ts';
import type { DecimationConfig } from '../mamba/engine.ts';
import { randomConfig } from '../mamba/random-checkpoint.ts';
import {
  chooseScanChunk,
  droppingLayers,
  finalGroup,
  maxDecimatedRows,
  outputGroup,
  planBatch,
  rowSequence,
  scanChunks,
  type PlannedSequence,
} from '../mamba/cuda/batch-plan.ts';
import { packPassTables, passTableWords } from '../mamba/cuda/device-tables.ts';
import { sortedIndexOf } from '../mamba/cuda/forward.ts';
import { headTileRows, planPassMemory, PASS_BUFFERS } from '../mamba/cuda/memory-plan.ts';
import { Layout } from '../mamba/cuda/layout.ts';
import { largestFitting, schedulePasses, type PassSegment } from '../mamba/cuda/scheduler.ts';
import { compileOptions, kernelCacheKey } from '../mamba/cuda/compile-cache.ts';
import * as manifest from '../mamba/cuda/kernels/manifest.ts';
import { loadKernelSources } from '../mamba/cuda/kernels/manifest.ts';
import { packKernelArgs } from '../mamba/cuda/bindings/driver.ts';
import { H200, prefillRoofline } from '../mamba/cuda/roofline.ts';
import { aLog2 } from '../mamba/cuda/device-weights.ts';
import { ssmStepLanes } from '../mamba/cuda/ops.ts';
import type { DeviceInfo } from '../mamba/cuda/bindings/driver.ts';
import type { KernelSet } from '../mamba/cuda/device.ts';
import {
  fusedStepByDefault,
  fusedStepFits,
  greedyHeadFits,
  mmaStepByDefault,
  stepGemmFits,
  mmaStepFits,
  headGreedyBlocks,
  STEP_LAYER_BYTES,
  stepLayersBlocks,
  stepLayerTable,
} from '../mamba/cuda/ops-step.ts';
import { ssmStepSeqsByDefault } from '../mamba/cuda/ops.ts';
import { l2Prefetch } from '../mamba/cuda/ops-args.ts';
import { headPrefetchBytes, l2PrefetchFits } from '../mamba/cuda/decode.ts';

const DECI: DecimationConfig = { layers: [2, 4], beta: 0.5, lBase: 100, minSeqLen: 20 };

describe('batch plan', () => {
  it('per-sequence row counts follow the reference K schedule at every layer', () => {
    const seqs: PlannedSequence[] = [
      { length: 500, protect: 7, decimation: DECI },
      { length: 60, protect: 1, decimation: DECI }, // K ≥ Lc at the second layer: nothing dropped there
      { length: 300, protect: 1, decimation: null },
      { length: 10, protect: 50, decimation: DECI }, // protect covers everything: Lc = 0
      { length: 400, protect: 3, decimation: { layers: [4], beta: 0.5, lBase: 64, minSeqLen: 0 } },
    ];
    const plan = planBatch(seqs, 6);
    seqs.forEach((seq, s) => {
      // replay the reference's keptRows with dummy scores to get the expected lengths
      let len = seq.length;
      const dropped: number[] = [];
      for (let layer = 0; layer < 6; layer++) {
        const g = plan.groups[plan.layerGroup[layer]!]!;
        expect(g.seqStart[s + 1]! - g.seqStart[s]!, `seq ${s} layer ${layer}`).toBe(len);
        const slot = seq.decimation ? seq.decimation.layers.indexOf(layer) : -1;
        if (slot < 0) continue;
        const rows = keptRows(len, seq.protect, slot, seq.decimation!, (lc) => new Float64Array(lc));
        if (rows) {
          len = rows.length;
          dropped.push(layer);
        }
      }
      const f = plan.groups[finalGroup(plan)]!;
      expect(f.seqStart[s + 1]! - f.seqStart[s]!).toBe(len);
      expect(droppingLayers(plan, s)).toEqual(dropped);
    });
    expect(plan.decimations.map((d) => d?.layer ?? null)).toEqual([null, null, 2, null, 4, null]);
    expect(outputGroup(plan, 2)).toBe(1);
    expect(outputGroup(plan, 1)).toBe(0);
    expect(maxDecimatedRows(plan)).toBe(plan.groups[1]!.rows);
    expect(plan.decimations[2]!.keep[2]).toBe(-1); // the plain sequence keeps everything
    expect(plan.decimations[2]!.contextLen[0]).toBe(493);
    expect(plan.decimations[2]!.keep[0]).toBe(100);
  });

  it('no decimation means one group and no steps', () => {
    const plan = planBatch([{ length: 5, protect: 1, decimation: null }], 3);
    expect(plan.groups).toHaveLength(1);
    expect(plan.decimations).toEqual([null, null, null]);
    expect(maxDecimatedRows(plan)).toBe(0);
    expect(() => planBatch([], 3)).toThrow();
    expect(() => planBatch([{ length: 0, protect: 1, decimation: null }], 3)).toThrow();
  });

  it('scan chunks never cross a sequence and cover every row once', () => {
    const plan = planBatch(
      [3, 17, 1, 64, 65].map((length) => ({ length, protect: 1, decimation: null })),
      1,
    );
    const g = plan.groups[0]!;
    const c = scanChunks(g, 16);
    const owner = rowSequence(g);
    const covered = new Int32Array(g.rows);
    for (let k = 0; k < c.count; k++) {
      for (let r = c.chunkStart[k]!; r < c.chunkStart[k]! + c.chunkLen[k]!; r++) {
        covered[r]!++;
        expect(owner[r]).toBe(owner[c.chunkStart[k]!]);
      }
      expect(c.chunkLen[k]).toBeGreaterThan(0);
      expect(c.chunkLen[k]).toBeLessThanOrEqual(16);
    }
    expect(Array.from(covered).every((v) => v === 1)).toBe(true);
    expect(Array.from(c.seqFirstChunk)).toEqual([0, 1, 3, 4, 8, 13]);
  });

  it('the scan chunk is a power of two that fills the GPU', () => {
    expect(chooseScanChunk(32768, 1536, 132)).toBe(128);
    expect(chooseScanChunk(32768, 4096, 132)).toBe(256);
    expect(chooseScanChunk(128, 1536, 132)).toBe(16);
    expect(chooseScanChunk(1 << 24, 768, 132)).toBe(2048);
  });

  it('given the blocks a multiprocessor holds, the scan chunk fills the last wave', () => {
    // 130m at 32K, 7 blocks an SM (924 a wave): 128 is 3,072 blocks (4 waves, the last a third full), 144 is 2,736 (3)
    expect(chooseScanChunk(32768, 1536, 132, 7)).toBe(144);
    // 1.4b: 256 is 4,096 blocks (5 waves), 288 is 3,648 (4)
    expect(chooseScanChunk(32768, 4096, 132, 7)).toBe(288);
    // never shorter than the power of two, never twice it; whole waves already: unchanged
    for (const [rows, d, sms, per] of [
      [8192, 1536, 132, 7],
      [131072, 1536, 132, 5],
      [1000, 768, 16, 3],
      [128, 1536, 132, 7],
    ] as const) {
      const base = chooseScanChunk(rows, d, sms);
      const fitted = chooseScanChunk(rows, d, sms, per);
      expect(fitted).toBeGreaterThanOrEqual(base);
      expect(fitted).toBeLessThan(2 * base);
      const waves = (len: number) => Math.ceil((Math.ceil(rows / len) * Math.ceil(d / 128)) / (per * sms));
      expect(waves(fitted) * fitted).toBeLessThanOrEqual(waves(base) * base);
    }
    expect(chooseScanChunk(128 * 7 * 132, 128, 132, 7)).toBe(chooseScanChunk(128 * 7 * 132, 128, 132));
  });
});

describe('device tables', () => {
  it('packs ids, positions, offsets, chunks and K into one int32 upload', () => {
    const plan = planBatch(
      [
        { length: 40, protect: 2, decimation: { layers: [0], beta: 0.5, lBase: 8, minSeqLen: 4 } },
        { length: 9, protect: 1, decimation: null },
      ],
      2,
    );
    const ids = Int32Array.from({ length: 49 }, (_, i) => i + 100);
    const t = packPassTables(plan, ids, 8, [0, 30]);
    expect(t.data.length).toBe(passTableWords(plan, 8));
    expect(Array.from(t.data.subarray(t.ids, t.ids + 49))).toEqual(Array.from(ids));
    expect(t.data[t.positions + 40]).toBe(30); // second sequence is a segment starting at 30
    expect(Array.from(t.data.subarray(t.groups[1]!.seqStart, t.groups[1]!.seqStart + 3))).toEqual([0, 10, 19]); // K 8 + tail 2, then 9
    expect(Array.from(t.data.subarray(t.decimations[0]!.keep, t.decimations[0]!.keep + 2))).toEqual([8, -1]);
    expect(Array.from(t.data.subarray(t.decimations[0]!.contextLen, t.decimations[0]!.contextLen + 2))).toEqual([
      38, 0,
    ]);
    expect(t.decimations[1]).toBeNull();
    expect(() => packPassTables(plan, new Int32Array(3), 8)).toThrow();
  });
});

describe('memory plan', () => {
  const config = randomConfig({ dModel: 768, nLayer: 24, vocabSize: 50280 });
  const planFor = (length: number, decimation: DecimationConfig | null) =>
    planBatch([{ length, protect: 1, decimation }], config.nLayer);
  const bytes = (length: number, decimation: DecimationConfig | null, precision: 'fp32' | 'bf16' = 'fp32') => {
    const plan = planFor(length, decimation);
    return planPassMemory({
      config,
      precision,
      plan,
      chunkLen: 128,
      tableWords: passTableWords(plan, 128),
      headRows: 1,
      withInitState: false,
    }).totalBytes;
  };

  it('every buffer is aligned, disjoint and in order; guards sit between them', () => {
    const plan = planFor(1000, DECI);
    const layout = planPassMemory({
      config,
      precision: 'bf16',
      plan,
      chunkLen: 64,
      tableWords: passTableWords(plan, 64),
      headRows: 4,
      withInitState: true,
      guardBytes: 256,
    });
    const spans = layout.entries();
    expect(spans.map(([n]) => n)).toEqual([...PASS_BUFFERS]);
    for (let i = 1; i < spans.length; i++) {
      const [, prev] = spans[i - 1]!;
      const [, cur] = spans[i]!;
      expect(cur.offset % 256).toBe(0);
      expect(cur.offset).toBeGreaterThanOrEqual(prev.offset + prev.bytes + 256);
    }
    expect(layout.guards.length).toBe(spans.length);
  });

  it('grows linearly with the prompt; bf16 is smaller; 128K of the 130m shape fits an H200 several times over', () => {
    const a = bytes(8192, null);
    const b = bytes(16384, null);
    const c = bytes(32768, null);
    expect(c - b).toBeCloseTo(2 * (b - a), -6);
    expect(bytes(32768, null, 'bf16')).toBeLessThan(c);
    expect(bytes(131072, null)).toBeLessThan(16 * 2 ** 30);
    expect(bytes(131072, DECI)).toBeGreaterThan(bytes(131072, null)); // gather buffers and scores
    // the fused scan keeps no chunk states and gathers no scan inputs: less memory, plain or decimating
    const fusedBytes = (length: number, decimation: DecimationConfig | null) => {
      const plan = planFor(length, decimation);
      return planPassMemory({
        config,
        precision: 'fp32',
        plan,
        chunkLen: 128,
        tableWords: passTableWords(plan, 128),
        headRows: 1,
        withInitState: false,
        scan: 'fused',
      }).totalBytes;
    };
    const d = config.dInner;
    expect(bytes(131072, null) - fusedBytes(131072, null)).toBeGreaterThanOrEqual((131072 / 128) * d * 17 * 4); // chunkH + ΣΔ
    expect(bytes(131072, DECI) - fusedBytes(131072, DECI)).toBeGreaterThan(
      bytes(131072, null) - fusedBytes(131072, null),
    );
  });

  it('head tiles keep logits under the cap', () => {
    expect(headTileRows(50280, 131072)).toBe(Math.floor(2 ** 30 / (50280 * 4)));
    expect(headTileRows(50280, 3)).toBe(3);
    expect(headTileRows(1e9, 10)).toBe(1);
  });

  it('layouts refuse duplicates and negative sizes', () => {
    const l = new Layout<'a' | 'b'>();
    l.add('a', 10);
    expect(() => l.add('a', 1)).toThrow();
    expect(() => l.add('b', -1)).toThrow();
    expect(l.get('a')).toEqual({ offset: 0, bytes: 10 });
  });
});

describe('pass scheduling', () => {
  const fitsTokens = (max: number) => (items: PassSegment[]) => items.reduce((n, i) => n + i.length, 0) <= max;

  it('packs requests in order while they fit', () => {
    const s = schedulePasses(
      [
        { length: 30, decimating: false },
        { length: 50, decimating: true },
        { length: 40, decimating: false },
        { length: 10, decimating: false },
      ],
      fitsTokens(100),
    );
    expect(s.passes.map((p) => p.map((i) => i.request))).toEqual([
      [0, 1],
      [2, 3],
    ]);
    expect(s.refused.size).toBe(0);
  });

  it('cuts long plain prompts into segments and refuses long DeciMamba prompts', () => {
    const s = schedulePasses(
      [
        { length: 250, decimating: false },
        { length: 20, decimating: false },
        { length: 150, decimating: true },
      ],
      fitsTokens(100),
      () => 'too big',
    );
    expect(s.passes).toEqual([
      [{ request: 0, start: 0, length: 100 }],
      [{ request: 0, start: 100, length: 100 }],
      [
        { request: 0, start: 200, length: 50 },
        { request: 1, start: 0, length: 20 },
      ],
    ]);
    expect(s.refused.get(2)).toMatch(/DeciMamba prompt of 150 tokens.*too big/);
  });

  it('largestFitting finds the boundary', () => {
    expect(largestFitting(1000, (n) => n <= 377)).toBe(377);
    expect(largestFitting(10, () => false)).toBe(0);
    expect(largestFitting(10, () => true)).toBe(10);
  });
});

describe('NVRTC cache keys and kernel arguments', () => {
  it('the key changes with sources, options, compiler and device, and nothing else', () => {
    const src = loadKernelSources();
    const opts = compileOptions({ actBf16: false, dState: 16, dConv: 4 }, 'sm_90');
    const key = kernelCacheKey(src, opts, '13.0', 'NVIDIA H200 sm_90');
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(kernelCacheKey(src, opts, '13.0', 'NVIDIA H200 sm_90')).toBe(key);
    expect(
      kernelCacheKey(
        src,
        compileOptions({ actBf16: true, dState: 16, dConv: 4 }, 'sm_90'),
        '13.0',
        'NVIDIA H200 sm_90',
      ),
    ).not.toBe(key);
    expect(
      kernelCacheKey(
        src,
        compileOptions({ actBf16: false, dState: 16, dConv: 4 }, 'sm_80'),
        '13.0',
        'NVIDIA H200 sm_90',
      ),
    ).not.toBe(key);
    expect(kernelCacheKey(src, opts, '13.1', 'NVIDIA H200 sm_90')).not.toBe(key);
    expect(kernelCacheKey(src, opts, '13.0', 'NVIDIA H100 sm_90')).not.toBe(key);
    const edited = { ...src, headers: { ...src.headers, 'scan.cu': src.headers['scan.cu'] + '\n' } };
    expect(kernelCacheKey(edited, opts, '13.0', 'NVIDIA H200 sm_90')).not.toBe(key);
    expect(opts).toContain('-DACT_BF16=0');
    expect(opts).toContain('-arch=sm_90');
  });

  it('kernel arguments are packed with their C sizes', () => {
    const parts = packKernelArgs([
      { ptr: 0x7f0000001000 },
      { ptr: null },
      { i32: -5 },
      { i64: -123456789012 },
      { f32: 1.5 },
      { u32: 7 },
      { i64: 2 ** 40 + 3 },
    ]);
    expect(parts.map((p) => p.length)).toEqual([8, 8, 4, 8, 4, 4, 8]);
    expect(parts[0]!.readBigUInt64LE(0)).toBe(0x7f0000001000n);
    expect(parts[1]!.readBigUInt64LE(0)).toBe(0n);
    expect(parts[2]!.readInt32LE(0)).toBe(-5);
    expect(parts[3]!.readBigInt64LE(0)).toBe(-123456789012n);
    expect(parts[4]!.readFloatLE(0)).toBe(1.5);
    expect(parts[5]!.readUInt32LE(0)).toBe(7);
    expect(parts[6]!.readBigInt64LE(0)).toBe(2n ** 40n + 3n);
    expect(() => packKernelArgs(Array.from({ length: 33 }, () => ({ i32: 0 })))).toThrow();
  });

  it('A is passed pre-scaled for exp2', () => {
    const a = aLog2(new Float32Array([0, Math.log(2)]));
    expect(a[0]).toBeCloseTo(-Math.LOG2E, 6);
    expect(2 ** (0.5 * a[1]!)).toBeCloseTo(Math.exp(-0.5 * 2), 6);
  });
});

describe('roofline', () => {
  const config = randomConfig({ dModel: 768, nLayer: 24, vocabSize: 50280 });
  it('counts GEMM FLOPs as 2·params per token and shrinks with DeciMamba', () => {
    const plain = prefillRoofline({
      config,
      precision: 'bf16',
      plan: planBatch([{ length: 32768, protect: 1, decimation: null }], 24),
      logitRows: 1,
    });
    const perToken = 24 * (768 * 3072 + 1536 * 80 + 48 * 1536 + 1536 * 768) * 2;
    expect(plain.matmulFlops).toBeCloseTo(perToken * 32768 + 2 * 768 * config.vocabSize, -3);
    expect(plain.floorMs).toBeCloseTo((plain.matmulFlops / H200.matmulFlops) * 1e3, 6); // compute-bound at 32K
    expect(H200.matmulFlops).toBeCloseTo(780.743446087347e12, -9); // the committed device check's measured ceiling
    const deci = prefillRoofline({
      config,
      precision: 'bf16',
      plan: planBatch(
        [{ length: 32768, protect: 1, decimation: { layers: [12], beta: 0.5, lBase: 2000, minSeqLen: 20 } }],
        24,
      ),
      logitRows: 1,
    });
    expect(deci.matmulFlops).toBeLessThan(0.6 * plain.matmulFlops); // 12 full layers, layer 12 partly, 11 at 2001 rows
    expect(deci.designFloorMs).toBeGreaterThanOrEqual(deci.floorMs);
  });
});

describe('logit rows after decimation', () => {
  it('finds a kept position by binary search, and misses a dropped one', () => {
    const kept = Int32Array.from([0, 3, 4, 9, 15, 16, 17]);
    expect([0, 3, 4, 9, 15, 16, 17].map((p) => sortedIndexOf(kept, p))).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect([-1, 1, 5, 10, 18].map((p) => sortedIndexOf(kept, p))).toEqual([-1, -1, -1, -1, -1]);
    expect(sortedIndexOf(new Int32Array(0), 0)).toBe(-1);
  });
});

describe('L2 prefetch of the head', () => {
  it('takes what half of L2 leaves after a layer and the states, whole 16-byte units, never more than the head', () => {
    const a = { layerBytes: 7_500_000, stateBytes: 98_304, batch: 1, l2Bytes: 50 * 2 ** 20, headBytes: 77_230_080 };
    const room = 25 * 2 ** 20 - 7_500_000 - 98_304;
    expect(headPrefetchBytes(a)).toBe(Math.floor(room / 16) * 16);
    expect(headPrefetchBytes({ ...a, headBytes: 4096 })).toBe(4096);
    expect(headPrefetchBytes({ ...a, layerBytes: 30_000_000 })).toBe(0);
  });
});

describe('decode step choice', () => {
  const shape130m = { dModel: 768, dInner: 1536, dtRank: 48, dState: 16 };
  const shape1_4b = { dModel: 2048, dInner: 4096, dtRank: 128, dState: 16 };
  it('takes the fused step only where the device check measured it faster, and only where it fits', () => {
    expect([1, 2, 3, 4, 8, 9].map((b) => fusedStepByDefault(b, shape130m))).toEqual([
      true,
      true,
      false,
      false,
      false,
      false,
    ]);
    expect(fusedStepByDefault(1, shape1_4b)).toBe(false);
    expect(fusedStepFits(8, shape1_4b)).toBe(true);
    expect(fusedStepFits(9, shape130m)).toBe(false);
    // rows of 16 bytes for the vector loads, x_proj's columns one a thread
    expect(fusedStepByDefault(1, { ...shape130m, dModel: 770 })).toBe(false);
    expect(fusedStepByDefault(1, { ...shape130m, dtRank: 240 })).toBe(false);
  });
  it('steps four sequences a thread in ssm_step_dt from 64K (sequence, channel) pairs, where the device check measured it faster', () => {
    expect([1, 8, 16, 64].map((b) => ssmStepSeqsByDefault(b, shape1_4b.dInner))).toEqual([1, 1, 4, 4]);
    expect([1, 16, 42, 43, 64].map((b) => ssmStepSeqsByDefault(b, shape130m.dInner))).toEqual([1, 1, 1, 4, 4]);
  });
  it('takes the mma step (partials) by default past the fused step up to batch 16, in bf16 at 130m only', () => {
    expect([1, 2, 3, 8, 16, 17, 64].map((b) => mmaStepByDefault(b, shape130m, true))).toEqual([
      false,
      false,
      'partials',
      'partials',
      'partials',
      false,
      false,
    ]);
    expect(mmaStepByDefault(8, shape130m, false)).toBe(false);
    expect(mmaStepByDefault(8, shape1_4b, true)).toBe(false);
  });
  it('runs x_proj and out_proj as step_gemm_mma on bf16 only, over k of whole 8 × 16 parts up to 1536', () => {
    expect(stepGemmFits(shape130m.dInner, true)).toBe(true); // 12 k steps a warp, at most
    expect(stepGemmFits(shape130m.dInner, false)).toBe(false);
    expect(stepGemmFits(shape1_4b.dInner, true)).toBe(false); // 4096: the weights would not fit a warp's registers
    expect(stepGemmFits(128, true)).toBe(true);
    expect(stepGemmFits(200, true)).toBe(false);
  });
  it('runs the mma step on bf16 only, for d_model a multiple of 64 up to 1024 and d_inner of whole 32-row blocks', () => {
    expect(mmaStepFits(shape130m, true)).toBe(true);
    expect(mmaStepFits(shape130m, false)).toBe(false); // its tiles read bf16
    expect(mmaStepFits({ ...shape130m, dModel: 1024, dInner: 2048 }, true)).toBe(true); // 16 k steps a warp, at most
    expect(mmaStepFits(shape1_4b, true)).toBe(false); // 2048: the weights would not fit a warp's registers
    expect(mmaStepFits({ ...shape130m, dModel: 800 }, true)).toBe(false); // not four parts of 16-wide steps
    expect(mmaStepFits({ ...shape130m, dInner: 1552 }, true)).toBe(false); // a partial 32-row block
    expect(mmaStepFits({ ...shape130m, dtRank: 240 }, true)).toBe(false); // x_proj's columns one a thread
  });
  it('takes the greedy head where every sequence stages at once, one block an SM', () => {
    expect([1, 8, 9].map((b) => greedyHeadFits(b, 768, 2))).toEqual([true, true, false]);
    // 32 KiB of staged act_t rows: 1.4b bf16 fits 8 sequences, its f32 build 4, a row of 770 none (16-byte loads)
    expect([4, 8].map((b) => greedyHeadFits(b, 2048, 2))).toEqual([true, true]);
    expect([4, 5].map((b) => greedyHeadFits(b, 2048, 4))).toEqual([true, false]);
    expect(greedyHeadFits(1, 770, 2)).toBe(false);
    // 32 rows a block (4 a warp): 50280 rows are 1572 row blocks, spread over 132 SMs; a small vocabulary takes fewer
    expect(headGreedyBlocks(50280, 132)).toBe(132);
    expect(headGreedyBlocks(264, 132)).toBe(9);
  });
  it('asks L2 for the weights ahead only where two layers and the scan states take at most half of it', () => {
    const l2Bytes = 50 * 2 ** 20; // H100
    // 130m: 7.5 MB a layer, 96 KiB of scan state a sequence
    const small = { layerBytes: 7.5e6, stateBytes: 1536 * 16 * 4, l2Bytes };
    expect(l2PrefetchFits({ ...small, batch: 1 })).toBe(true);
    expect(l2PrefetchFits({ ...small, batch: 64 })).toBe(true);
    expect(l2PrefetchFits({ ...small, batch: 128 })).toBe(false);
    // 1.4b: ~52 MB a layer does not fit at all
    expect(l2PrefetchFits({ layerBytes: 52e6, stateBytes: 4096 * 16 * 4, batch: 1, l2Bytes })).toBe(false);
  });
  it('packs an L2 prefetch as (base, bytes, stride, count), none as zeros, and refuses ranges off 16 bytes', () => {
    expect(l2Prefetch({ ptr: 4096, bytes: 160, stride: 0, count: 1 })).toEqual([
      { ptr: 4096 },
      { i64: 160 },
      { i64: 0 },
      { i32: 1 },
    ]);
    expect(l2Prefetch(null)).toEqual([{ ptr: null }, { i64: 0 }, { i64: 0 }, { i32: 0 }]);
    expect(() => l2Prefetch({ ptr: 4096, bytes: 100, stride: 0, count: 1 })).toThrow(/multiples of 16/);
    expect(() => l2Prefetch({ ptr: 4104, bytes: 160, stride: 0, count: 1 })).toThrow(/multiples of 16/);
  });
  it("sizes step_layers' grid to its GEMV stages, below the resident limit, or refuses it", () => {
    // a stand-in for the occupancy query: one block of step_layers a multiprocessor (its 255 registers a thread)
    const kernels = { blocksPerMultiprocessor: () => 1 } as unknown as KernelSet;
    const h100 = { multiprocessors: 132, cooperativeLaunch: true } as DeviceInfo;
    // 130m: in_proj 3072 rows / 32 = 96 blocks, out_proj 768 / 16 = 48
    expect(stepLayersBlocks(kernels, h100, { dModel: 768, dInner: 1536 })).toBe(96);
    // 1.4b: in_proj 8192 / 32 = 256 would need every multiprocessor: refused (the fused step runs instead)
    expect(stepLayersBlocks(kernels, h100, { dModel: 2048, dInner: 4096 })).toBe(0);
    expect(stepLayersBlocks(kernels, { ...h100, multiprocessors: 96 }, { dModel: 768, dInner: 1536 })).toBe(0);
    // no cooperative launch (the CPU emulator): one block takes every stage's work
    expect(stepLayersBlocks(kernels, { ...h100, cooperativeLaunch: false }, { dModel: 768, dInner: 1536 })).toBe(1);
  });
  it("lays out step_layers' table as kernels/step-layers.cu's StepLayer: 12 pointers a layer, null as 0, then its span", () => {
    const layer = (base: number) => ({
      norm: base + 1,
      inProj: base + 2,
      inProjBias: null,
      convWeight: base + 4,
      convBias: base + 5,
      xProj: base + 6,
      dtProjWeight: base + 99,
      dtProjT: base + 7,
      dtProjBias: base + 8,
      aLog2: base + 9,
      d: base + 10,
      outProj: base + 11,
      outProjBias: null,
      span: { ptr: base + 1, bytes: 96 },
    });
    const table = stepLayerTable([layer(0), layer(100)]);
    expect(Array.from(table, Number)).toEqual([
      1, 2, 0, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 96, 101, 102, 0, 104, 105, 106, 107, 108, 109, 110, 111, 0, 101, 96,
    ]);
    expect(STEP_LAYER_BYTES).toBe(14 * 8);
    const source = loadKernelSources().headers['step-layers.cu']!;
    const struct = source.slice(
      source.indexOf('struct StepLayer {'),
      source.indexOf('};', source.indexOf('struct StepLayer {')),
    );
    expect(struct.match(/\*\s*\w+;/g)!.map((f) => f.replace(/[*;\s]/g, ''))).toEqual([
      'norm',
      'inProj',
      'inProjBias',
      'convWeight',
      'convBias',
      'xProj',
      'dtProjT',
      'dtBias',
      'aLog2',
      'dSkip',
      'outProj',
      'outProjBias',
      'span',
    ]);
    expect(struct.trimEnd().endsWith('i64 spanBytes;')).toBe(true);
  });
  it('splits a channel of the one-step scan over lanes as step.cu does', () => {
    expect([2, 4, 8, 12, 16, 32, 64, 128].map(ssmStepLanes)).toEqual([1, 1, 2, 1, 4, 8, 8, 8]);
  });
});

describe('kernel manifest', () => {
  it('every launch-shape constant equals its #define in the kernel sources', () => {
    const { headers } = loadKernelSources();
    const text = Object.values(headers).join('\n');
    const names = Object.entries(manifest).filter(([n, v]) => /^[A-Z0-9_]+$/.test(n) && typeof v === 'number');
    expect(names.length).toBeGreaterThanOrEqual(14);
    for (const [name, value] of names) {
      const m = new RegExp(`^#define ${name} (\\d+)`, 'm').exec(text);
      expect(m, name).not.toBeNull();
      expect(Number(m![1]), name).toBe(value);
    }
  });
  it("the staged scan's default stage shape is scan-staged.cu's", () => {
    const text = loadKernelSources().headers['scan-staged.cu']!;
    const define = (name: string) => Number(new RegExp(`^#define ${name} (\\d+)`, 'm').exec(text)?.[1]);
    expect({ steps: define('SCAN_STAGE_STEPS'), stages: define('SCAN_STAGES') }).toEqual(manifest.SCAN_STAGE_DEFAULT);
  });
});
