// keptUpToTies (mamba/cuda/device-check/parity-metrics.ts): when the bf16 path's kept tokens may differ from the
// golden ones. Pure logic on made-up scores; the emulator case in cuda-emulator-bf16.test.ts runs it on a real model.
import { describe, expect, it } from 'vitest';
import { keptUpToTies } from '../mamba/cuda/device-check/parity-metrics.ts';

// ten context tokens at positions 0..9; the reference keeps the five best: 1, 3, 5, 7, 9 (K-th score 1.0)
const layer1 = {
  layer: 1,
  positions: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  scores: [0.5, 1.2, 0.9995, 1.3, 0.6, 1.0, 0.7, 1.4, 0.9, 1.5],
};
const want1 = { layer: 1, indices: [1, 3, 5, 7, 9] };

describe('keptUpToTies', () => {
  it('accepts identical kept sets', () => {
    expect(keptUpToTies([want1], [want1], [layer1])).toEqual({ ok: true, missing: 0, worstGap: 0 });
  });

  it('accepts a swap at the K-th score within 0.5% (1.0 against 0.9995), and no swap past it', () => {
    const tie = keptUpToTies([{ layer: 1, indices: [1, 2, 3, 7, 9] }], [want1], [layer1]);
    expect(tie.ok).toBe(true);
    expect(tie.missing).toBe(1);
    expect(tie.worstGap).toBeCloseTo(0.0005, 6);
    // 8 (0.9) for 5 (1.0): 10% below the K-th score, a wrong choice
    expect(keptUpToTies([{ layer: 1, indices: [1, 3, 7, 8, 9] }], [want1], [layer1]).ok).toBe(false);
    // a smaller tie tolerance rejects the near-tie too
    expect(keptUpToTies([{ layer: 1, indices: [1, 2, 3, 7, 9] }], [want1], [layer1], 0.0001).ok).toBe(false);
  });

  it('after a swap, bounds a later layer by its count of near-ties, and does not count a token dropped earlier', () => {
    // layer 2 scores the reference's five survivors and keeps three: 9, 1 and 5 (the K-th, 2.004; 3's 2.0 is 0.2% off)
    const layer2 = { layer: 2, positions: [1, 3, 5, 7, 9], scores: [2.5, 2.0, 2.004, 1.0, 3.0] };
    const want = [want1, { layer: 2, indices: [1, 5, 9] }];
    const got1 = { layer: 1, indices: [1, 2, 3, 7, 9] }; // 2 kept for 5 at layer 1 (a near-tie)
    // 5 is missing at layer 2 because layer 1 dropped it, and 2 is not among the reference's scored tokens
    const cascade = keptUpToTies([got1, { layer: 2, indices: [1, 2, 9] }], want, [layer1, layer2]);
    expect([cascade.ok, cascade.missing]).toEqual([true, 1]);
    // 1 missing as well (2.5, far from 2.004): one more missing, against two scores within 0.5% (2.004, 2.0)
    const one = keptUpToTies([got1, { layer: 2, indices: [2, 3, 9] }], want, [layer1, layer2]);
    expect([one.ok, one.missing]).toEqual([true, 2]);
    // with no swap upstream the same far token is a wrong choice
    expect(keptUpToTies([want1, { layer: 2, indices: [3, 5, 9] }], want, [layer1, layer2]).ok).toBe(false);
    // within 0.1% only the K-th itself is a near-tie, and two (1 and 9) are missing
    expect(keptUpToTies([got1, { layer: 2, indices: [2, 3, 7] }], want, [layer1, layer2], 0.001).ok).toBe(false);
    expect(keptUpToTies([got1, { layer: 2, indices: [2, 3, 9] }], want, [layer1, layer2], 0.001).ok).toBe(true);
  });

  it('rejects different layers or a missing layer', () => {
    expect(keptUpToTies([{ layer: 2, indices: [1, 3, 5, 7, 9] }], [want1], [layer1]).ok).toBe(false);
    expect(keptUpToTies([], [want1], [layer1]).ok).toBe(false);
  });
});
