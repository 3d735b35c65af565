// DeciMamba's token selection on hand-built Δ scores.
import { describe, expect, it } from 'vitest';
import {
  composeIndices,
  decimationK,
  defaultDecimation,
  deltaScores,
  keptRows,
  selectKept,
  validateDecimation,
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
