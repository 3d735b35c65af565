// The split scans' pass 2 cut into segments (engine option scanCarry: 'segmented', kernels/scan.cu
// scan_carry_segmented) on the CPU emulator, against the reference engine: fewer chunks than segments (empty
// segments), many chunks per segment, DeciMamba, a mixed batch and segments of a long prompt carrying h0, with and
// without the staged passes; and that pass 2 keeps its profiler label. Needs g++; skipped without it.
import { describe, expect, it } from 'vitest';
import type { PrefillOptions } from '../mamba/engine.ts';
import { CXX, emulatedCudaEngine, expectReferenceParity } from './cuda-emulator-setup.ts';
import { maxStateDiff, randomIds, tinyModel } from './helpers.ts';

const TOL = 1e-4;
const CudaEngine = emulatedCudaEngine([{ actBf16: false, dState: 4, dConv: 4 }]);

describe.skipIf(!CXX).each(['split-softplus', 'split-staged'] as const)(
  'segmented scan carry (%s) on the CPU emulator',
  (scan) => {
    it('equals the reference: empty and long segments, DeciMamba, a batch, segments of a long prompt', async () => {
      // d_inner 34 × d_state 16 = 544 (channel, state) pairs: 17 warps of 32, the last one full; d_state 4: partial
      for (const dState of [16, 4]) {
        const m = tinyModel({ dModel: 17, nLayer: 3, dState, seed: 21 });
        const V = m.config.vocabSize;
        const options = { precision: 'fp32', guardBytes: 256, scan, scanCarry: 'segmented', scanChunk: 16 } as const;
        const engine = CudaEngine().create(m.config, m.weights, options);
        const segmented = CudaEngine().create(m.config, m.weights, { ...options, maxTokensPerPass: 100 });
        try {
          const reqs: { ids: number[]; options: PrefillOptions }[] = [
            { ids: randomIds(1, V, 1), options: {} },
            { ids: randomIds(40, V, 2), options: { logitPositions: 'all' } }, // 3 chunks: 5 empty segments
            { ids: randomIds(300, V, 3), options: { logitPositions: [0, 150, 299] } }, // 19 chunks: 3 a segment
            { ids: randomIds(200, V, 4), options: { decimation: { layers: [1], beta: 0.5, lBase: 40, minSeqLen: 4 } } },
          ];
          const long = { ids: randomIds(260, V, 9), positions: [0, 130, 259] };
          await expectReferenceParity(
            { engine, segmented, reference: m.engine, requests: reqs, long },
            TOL,
            `d_state ${dState}`,
          );
        } finally {
          await engine.dispose();
          await segmented.dispose();
        }
      }
    }, 240_000);

    it('is the default and reports its pass 2 under the label scan_carry, so the per-kernel rows of the scan comparison line up', async () => {
      const m = tinyModel({ dModel: 16, nLayer: 2, dState: 16, seed: 3 });
      const engine = CudaEngine().create(m.config, m.weights, { precision: 'fp32', scan });
      const device = engine.core.device;
      device.enableProfiler(true);
      try {
        device.profiler!.begin();
        await engine.prefill(randomIds(40, m.config.vocabSize, 1), {});
        const launched = device.profiler!.collect().map((t) => t.label);
        expect(launched.filter((l) => l === 'scan_carry')).toHaveLength(1); // the profiler label stays 'scan_carry'
        expect(engine.name).not.toContain('carry'); // segmented is the default (DEFAULT_SCAN_CARRY)
        const serial = CudaEngine().create(m.config, m.weights, { precision: 'fp32', scan, scanCarry: 'serial' });
        expect(serial.name).toContain('serialcarry');
        await serial.dispose();
      } finally {
        device.enableProfiler(false);
        await engine.dispose();
      }
    });
  },
);
