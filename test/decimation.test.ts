// DeciMamba's token selection on hand-built Δ scores.
import { describe, expect, it } from 'vitest';
import {
  composeIndices,
  decimationK,
  defaultDecimation,
  deltaScores,
  clampProtect,
  decimationSlot,
  identityIndices,
  keptRows,
  planDecimation,
  selectKept,
  validateDecimation,
  validateLengthBudgets,
} from '../mamba/decimation.ts';
import type { DecimationConfig } from '../mamba/engine.ts';

const cfg = (over: Partial<DecimationConfig> = {}): DecimationConfig => ({
  layers: [0, 1, 2],
  beta: 0.5,
  lBase: 8,
  minSeqLen: 2,
  ...over,
});
const scores = (xs: number[]) => Float64Array.from(xs);

describe('selectKept', () => {
  it('keeps the top-k scores, returned in time order', () => {
    expect(Array.from(selectKept(scores([0.1, 0.9, 0.3, 0.8, 0.2]), 2))).toEqual([1, 3]);
    expect(Array.from(selectKept(scores([5, 4, 3, 2, 1]), 3))).toEqual([0, 1, 2]);
    expect(Array.from(selectKept(scores([1, 2, 3, 4, 5]), 3))).toEqual([2, 3, 4]);
  });
  it('breaks ties toward the earlier index', () => {
    expect(Array.from(selectKept(scores([1, 1, 1, 1]), 2))).toEqual([0, 1]);
    expect(Array.from(selectKept(scores([0, 2, 1, 2, 2]), 2))).toEqual([1, 3]);
    expect(Array.from(selectKept(Float32Array.from([3, 7, 7, 3]), 3))).toEqual([0, 1, 2]);
  });
  it('handles k = 0, k ≥ n and NaN', () => {
    expect(Array.from(selectKept(scores([1, 2]), 0))).toEqual([]);
    expect(Array.from(selectKept(scores([1, 2]), 5))).toEqual([0, 1]);
    expect(Array.from(selectKept(scores([NaN, 1, 0]), 2))).toEqual([1, 2]);
  });
});

describe('decimationK', () => {
  it('follows K_s = max(min(Lc, ⌊L_base·β^s⌋), min_seq_len) over several layers', () => {
    const c = cfg({ lBase: 2000, beta: 0.5, minSeqLen: 20 });
    expect([0, 1, 2, 3].map((s) => decimationK(s, 10_000, c))).toEqual([2000, 1000, 500, 250]);
    expect(decimationK(7, 10_000, c)).toBe(20); // 2000/128 = 15.6 < min_seq_len
    expect(decimationK(0, 1500, c)).toBe(1500); // below K: keep everything
    expect(decimationK(0, 10, c)).toBe(10); // min_seq_len never exceeds the context
    expect(decimationK(0, 0, c)).toBe(0);
    expect(decimationK(1, 10_000, cfg({ lBase: 1001, beta: 0.5 }))).toBe(500); // int() truncates 500.5
  });
});

describe('keptRows', () => {
  const delta = [0.5, 0.1, 0.9, 0.2, 0.7, 0.3, 0.8, 0.4];
  const scoresFor = (n: number) => scores(delta.slice(0, n));

  it('keeps top-K context rows plus the whole protected tail, never scoring the tail', () => {
    // L = 8, protect 3: context = rows 0..4, K at s=1 is max(min(5, 8·0.5), 2) = 4
    const rows = keptRows(8, 3, 1, cfg(), (n) => {
      expect(n).toBe(5);
      return scoresFor(n);
    });
    expect(Array.from(rows!)).toEqual([0, 2, 3, 4, 5, 6, 7]);
  });
  it('keeps nothing but the best row at min_seq_len 1', () => {
    expect(Array.from(keptRows(8, 2, 0, cfg({ lBase: 1, minSeqLen: 1 }), scoresFor)!)).toEqual([2, 6, 7]);
  });
  it('is a no-op (null) when the context fits in K or is empty', () => {
    expect(keptRows(8, 1, 0, cfg({ lBase: 7 }), scoresFor)).toBeNull(); // Lc = 7 = K
    expect(keptRows(8, 8, 0, cfg({ lBase: 1 }), scoresFor)).toBeNull(); // all protected
    expect(keptRows(3, 10, 0, cfg({ lBase: 1 }), scoresFor)).toBeNull(); // protect clamped to L
    expect(keptRows(8, 0, 0, cfg({ lBase: 4, minSeqLen: 6 }), scoresFor)!.length).toBe(6); // min_seq_len wins over L_base·β^s
  });
  it('with min_seq_len above L_base·β^s keeps min_seq_len rows', () => {
    const rows = keptRows(8, 1, 2, cfg({ lBase: 4, minSeqLen: 3 }), scoresFor)!; // 4·0.25 = 1 < 3
    expect(Array.from(rows)).toEqual([2, 4, 6, 7]);
  });
});

describe('index bookkeeping across layers', () => {
  it('maps kept rows back to original positions', () => {
    const afterFirst = composeIndices(
      Int32Array.from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
      Int32Array.from([1, 3, 4, 7, 8, 9]),
    );
    const afterSecond = composeIndices(afterFirst, Int32Array.from([0, 2, 4, 5]));
    expect(Array.from(afterSecond)).toEqual([1, 4, 8, 9]);
  });
  it('scores Δ rows by their L2 norm over channels, context only', () => {
    const delta = Float32Array.from([3, 4, 0, 1, 1, 1, 9, 9]); // [4 rows, 2 channels]
    expect(Array.from(deltaScores(delta, 2, 3))).toEqual([5, 1, Math.SQRT2]);
  });
});

describe('config', () => {
  it('scales the paper default to the model depth', () => {
    expect(defaultDecimation(24)).toEqual({ layers: [12], beta: 0.5, lBase: 2000, minSeqLen: 20 });
    expect(defaultDecimation(4).layers).toEqual([2]);
  });
  it('rejects layers outside the model, unsorted layers and bad β', () => {
    expect(() => validateDecimation(cfg({ layers: [12] }), 4)).toThrow(/layer 12/);
    expect(() => validateDecimation(cfg({ layers: [2, 1] }), 4)).toThrow(/ascending/);
    expect(() => validateDecimation(cfg({ beta: 0 }), 4)).toThrow(/beta/);
    expect(() => validateDecimation(cfg({ layers: [] }), 4)).toThrow(/empty/);
    expect(() => validateDecimation(cfg(), 4)).not.toThrow();
  });
});

describe('config bounds', () => {
  it('accepts exactly the edges of every range and refuses one step past them', () => {
    expect(() => validateDecimation(cfg({ layers: [0, 3] }), 4)).not.toThrow(); // first and last layer
    expect(() => validateDecimation(cfg({ layers: [4] }), 4)).toThrow(/layer 4 is not a layer of this 4-layer/);
    expect(() => validateDecimation(cfg({ layers: [-1] }), 4)).toThrow(/layer -1/);
    expect(() => validateDecimation(cfg({ layers: [1.5] }), 4)).toThrow(/layer 1.5/);
    expect(() => validateDecimation(cfg({ layers: [1, 1] }), 4)).toThrow(/strictly ascending/);
    expect(() => validateDecimation(cfg({ beta: 1 }), 4)).not.toThrow();
    expect(() => validateDecimation(cfg({ beta: 1.01 }), 4)).toThrow(/beta must be in \(0, 1\], got 1.01/);
    expect(() => validateDecimation(cfg({ beta: Number.NaN }), 4)).toThrow(/beta/);
    expect(() => validateDecimation(cfg({ lBase: 1 }), 4)).not.toThrow();
    expect(() => validateDecimation(cfg({ lBase: 0.5 }), 4)).toThrow(/lBase must be ≥ 1, got 0.5/);
    expect(() => validateDecimation(cfg({ minSeqLen: 0 }), 4)).not.toThrow();
    expect(() => validateDecimation(cfg({ minSeqLen: -1 }), 4)).toThrow(/minSeqLen must be an integer ≥ 0, got -1/);
    expect(() => validateDecimation(cfg({ minSeqLen: 1.5 }), 4)).toThrow(/minSeqLen/);
  });

  it('refuses length budgets that are empty, fractional, zero or not strictly ascending', () => {
    expect(() => validateLengthBudgets([[1, 1]])).not.toThrow();
    expect(() => validateLengthBudgets([])).toThrow(/lBaseByLength is empty/);
    expect(() => validateLengthBudgets([[0, 5]])).toThrow(/lBaseByLength\[0\] must be two integers ≥ 1, got \[0, 5\]/);
    expect(() => validateLengthBudgets([[5, 0]])).toThrow(/\[0\]/);
    expect(() => validateLengthBudgets([[1.5, 5]])).toThrow(/integers/);
    expect(() =>
      validateLengthBudgets([
        [10, 5],
        [20, 6],
        [20, 7],
      ]),
    ).toThrow(/strictly ascending/);
    expect(() =>
      validateLengthBudgets([
        [10, 5],
        [9, 6],
      ]),
    ).toThrow(/strictly ascending/);
    expect(() =>
      validateLengthBudgets([
        [10, 5],
        [11, 6.5],
      ]),
    ).toThrow(/lBaseByLength\[1\]/);
  });
});

describe('small helpers', () => {
  it('clamps the protected tail to [0, seqLen], flooring a fractional one', () => {
    expect(clampProtect(3.7, 10)).toBe(3);
    expect(clampProtect(-2, 10)).toBe(0);
    expect(clampProtect(12, 10)).toBe(10);
    expect(clampProtect(10, 10)).toBe(10);
  });
  it("finds a layer's slot, -1 without a config or for a pass-through layer", () => {
    expect(decimationSlot(cfg({ layers: [1, 3] }), 3)).toBe(1);
    expect(decimationSlot(cfg({ layers: [1, 3] }), 2)).toBe(-1);
    expect(decimationSlot(null, 0)).toBe(-1);
    expect(decimationSlot(undefined, 0)).toBe(-1);
  });
  it('K is 0 for an empty context and never above it', () => {
    expect(decimationK(0, 0, cfg())).toBe(0);
    expect(decimationK(0, -3, cfg())).toBe(0);
    expect(decimationK(0, 5, cfg({ lBase: 100 }))).toBe(5);
    expect(decimationK(0, 5, cfg({ minSeqLen: 9 }))).toBe(5);
  });
  it('identity indices are 0..n-1', () => {
    expect(Array.from(identityIndices(4))).toEqual([0, 1, 2, 3]);
    expect(identityIndices(0).length).toBe(0);
  });
  it('keeps the tail in order after the kept context rows', () => {
    const rows = keptRows(8, 3, 0, cfg({ lBase: 2, minSeqLen: 1 }), () => scores([0, 5, 1, 9, 2]));
    expect(Array.from(rows!)).toEqual([1, 3, 5, 6, 7]);
    expect(keptRows(3, 3, 0, cfg(), () => scores([]))).toBeNull(); // everything protected
  });
});

describe('planDecimation', () => {
  it('without a config passes every token through every layer', () => {
    expect(planDecimation(100, 4, 3, null)).toEqual({
      keep: [-1, -1, -1],
      contextLen: [0, 0, 0],
      finalLength: 100,
      reported: [],
    });
  });
  it('shrinks the sequence layer by layer with K_s = L_base·β^s, the protected tail kept whole', () => {
    // layers 1 and 3 decimate: slot 0 keeps 40 of 96 context rows, slot 1 keeps 20 of 40
    const plan = planDecimation(100, 4, 4, cfg({ layers: [1, 3], lBase: 40, minSeqLen: 1 }));
    expect(plan).toEqual({ keep: [-1, 40, -1, 20], contextLen: [0, 96, 0, 40], finalLength: 24, reported: [1, 3] });
  });
  it('reports only layers that drop something', () => {
    // slot 0 keeps min(96, 200) = 96 → nothing dropped; slot 1 budget 100 also ≥ 96
    expect(planDecimation(100, 4, 4, cfg({ layers: [0, 2], lBase: 200, minSeqLen: 1 }))).toEqual({
      keep: [-1, -1, -1, -1],
      contextLen: [0, 0, 0, 0],
      finalLength: 100,
      reported: [],
    });
    // K exactly one below the context drops one row
    expect(planDecimation(10, 1, 1, cfg({ layers: [0], lBase: 8, minSeqLen: 1 }))).toEqual({
      keep: [8],
      contextLen: [9],
      finalLength: 9,
      reported: [0],
    });
  });
  it('skips a decimating layer whose whole sequence is protected', () => {
    expect(planDecimation(5, 9, 2, cfg({ layers: [0, 1], lBase: 1, minSeqLen: 1 })).finalLength).toBe(5);
  });
});
