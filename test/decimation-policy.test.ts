// mamba/decimation.ts's smaller pieces at their boundaries: the length-adaptive L_base (validation, log-log
// interpolation, ends), config validation messages, the layer slot, protect clamping and identity indices.
import { describe, expect, it } from 'vitest';
import {
  clampProtect, decimationForLength, decimationK, decimationSlot, DecimationError, identityIndices, lBaseForLength, validateDecimation, validateLengthBudgets,
} from '../mamba/decimation.ts';

const budgets = [[4096, 1500], [16384, 6000], [262144, 16000]] as const;
const cfg = { layers: [3, 5], beta: 0.5, lBase: 2000, minSeqLen: 20 };

describe('length-adaptive L_base', () => {
  it('takes the end values outside the points and the points themselves exactly', () => {
    expect(lBaseForLength(budgets, 1)).toBe(1500);
    expect(lBaseForLength(budgets, 4096)).toBe(1500);
    expect(lBaseForLength(budgets, 16384)).toBe(6000);
    expect(lBaseForLength(budgets, 262144)).toBe(16000);
    expect(lBaseForLength(budgets, 10_000_000)).toBe(16000);
    expect(lBaseForLength([[100, 7]], 50)).toBe(7);
    expect(lBaseForLength([[100, 7]], 500)).toBe(7);
  });

  it('interpolates log-log between neighbours (a power law through both), rounded', () => {
    expect(lBaseForLength(budgets, 8192)).toBe(3000); // halfway in log length: the geometric mean of 1500 and 6000
    expect(lBaseForLength(budgets, 65536)).toBe(Math.round(6000 * (16000 / 6000) ** 0.5));
    expect(lBaseForLength(budgets, 4097)).toBe(Math.round(Math.exp(Math.log(1500) + (Math.log(4097 / 4096) / Math.log(4)) * Math.log(4))));
    const a = lBaseForLength(budgets, 20000);
    expect(a).toBeGreaterThan(6000);
    expect(a).toBeLessThan(lBaseForLength(budgets, 30000));
  });

  it('decimationForLength swaps in the budget\'s L_base, or keeps the fixed config', () => {
    expect(decimationForLength(cfg, budgets, 8192)).toEqual({ ...cfg, lBase: 3000 });
    expect(decimationForLength(cfg, undefined, 8192)).toBe(cfg);
  });

  it('refuses empty, non-integer, < 1 and unsorted points', () => {
    expect(() => validateLengthBudgets(budgets)).not.toThrow();
    expect(() => validateLengthBudgets([[1, 1]])).not.toThrow();
    const bad: Array<[ReadonlyArray<readonly [number, number]>, string]> = [
      [[], 'decimation: lBaseByLength is empty'],
      [[[0, 5]], 'decimation: lBaseByLength[0] must be two integers ≥ 1, got [0, 5]'],
      [[[5, 0]], 'decimation: lBaseByLength[0] must be two integers ≥ 1, got [5, 0]'],
      [[[1.5, 5]], 'decimation: lBaseByLength[0] must be two integers ≥ 1, got [1.5, 5]'],
      [[[5, 2.5]], 'decimation: lBaseByLength[0] must be two integers ≥ 1, got [5, 2.5]'],
      [[[10, 5], [10, 6]], 'decimation: lBaseByLength lengths must be strictly ascending'],
      [[[10, 5], [9, 6]], 'decimation: lBaseByLength lengths must be strictly ascending'],
    ];
    for (const [points, message] of bad) {
      expect(() => validateLengthBudgets(points)).toThrow(DecimationError);
      expect(() => validateLengthBudgets(points)).toThrow(message);
    }
  });
});

describe('validateDecimation', () => {
  it('accepts the edges of every field and names what is wrong otherwise', () => {
    for (const ok of [cfg, { ...cfg, layers: [0] }, { ...cfg, layers: [7] }, { ...cfg, beta: 1 }, { ...cfg, lBase: 1 }, { ...cfg, minSeqLen: 0 }]) {
      expect(() => validateDecimation(ok, 8)).not.toThrow();
    }
    const bad: Array<[typeof cfg, string]> = [
      [{ ...cfg, layers: [] }, 'decimation: layers is empty'],
      [{ ...cfg, layers: [8] }, 'decimation: layer 8 is not a layer of this 8-layer model'],
      [{ ...cfg, layers: [-1] }, 'decimation: layer -1 is not a layer of this 8-layer model'],
      [{ ...cfg, layers: [1.5] }, 'decimation: layer 1.5 is not a layer of this 8-layer model'],
      [{ ...cfg, layers: [3, 3] }, 'decimation: layers must be strictly ascending'],
      [{ ...cfg, beta: 0 }, 'decimation: beta must be in (0, 1], got 0'],
      [{ ...cfg, beta: 1.01 }, 'decimation: beta must be in (0, 1], got 1.01'],
      [{ ...cfg, beta: Number.NaN }, 'decimation: beta must be in (0, 1], got NaN'],
      [{ ...cfg, lBase: 0.5 }, 'decimation: lBase must be ≥ 1, got 0.5'],
      [{ ...cfg, minSeqLen: -1 }, 'decimation: minSeqLen must be an integer ≥ 0, got -1'],
      [{ ...cfg, minSeqLen: 2.5 }, 'decimation: minSeqLen must be an integer ≥ 0, got 2.5'],
    ];
    for (const [c, message] of bad) expect(() => validateDecimation(c, 8), message).toThrow(message);
  });
});

describe('small helpers', () => {
  it('decimationSlot is the position in layers, -1 for other layers or no config', () => {
    expect(decimationSlot(cfg, 3)).toBe(0);
    expect(decimationSlot(cfg, 5)).toBe(1);
    expect(decimationSlot(cfg, 4)).toBe(-1);
    expect(decimationSlot(null, 3)).toBe(-1);
    expect(decimationSlot(undefined, 3)).toBe(-1);
  });
  it('clampProtect floors into [0, seqLen]', () => {
    expect(clampProtect(5, 10)).toBe(5);
    expect(clampProtect(5.9, 10)).toBe(5);
    expect(clampProtect(50, 10)).toBe(10);
    expect(clampProtect(-3, 10)).toBe(0);
  });
  it('decimationK is 0 for an empty context and never above it', () => {
    expect(decimationK(0, 0, cfg)).toBe(0);
    expect(decimationK(0, -5, cfg)).toBe(0);
    expect(decimationK(0, 10, cfg)).toBe(10);
    expect(decimationK(1, 5000, cfg)).toBe(1000);
    expect(decimationK(1, 5000, { ...cfg, lBase: 2001 })).toBe(1000); // floor of 1000.5
    expect(decimationK(10, 5000, cfg)).toBe(20);
  });
  it('identityIndices is 0..n-1', () => {
    expect(Array.from(identityIndices(4))).toEqual([0, 1, 2, 3]);
    expect(identityIndices(0)).toHaveLength(0);
  });
});
