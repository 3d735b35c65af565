// mamba/sampling.ts edge cases on hand-built logits: what counts as greedy, defaults and invalid knobs treated as
// off, NaN logits, ties, numerical stability at large logits, and the inverse-CDF draw at exact boundaries.
import { describe, expect, it } from 'vitest';
import type { Rng } from '../mamba/rng.ts';
import { candidateDistribution, isGreedy, logProbOf, sampleToken } from '../mamba/sampling.ts';

/** An Rng that returns fixed uniforms, to hit the draw's boundaries exactly. */
const fixed = (...u: number[]): Rng => ({ next: () => u.shift()!, int: () => 0, normal: () => 0 }) as unknown as Rng;

describe('isGreedy', () => {
  it('is greedy without a positive temperature, or with top-k 1', () => {
    expect(isGreedy({})).toBe(true);
    expect(isGreedy({ temperature: 0 })).toBe(true);
    expect(isGreedy({ temperature: -1 })).toBe(true);
    expect(isGreedy({ temperature: 0.7 })).toBe(false);
    expect(isGreedy({ temperature: 0.7, topK: 1 })).toBe(true);
    expect(isGreedy({ temperature: 0.7, topK: 2 })).toBe(false);
  });
});

describe('candidateDistribution', () => {
  const softmax = (l: number[]) => l.map((x) => Math.exp(x)).map((e, _, a) => e / a.reduce((s, v) => s + v, 0));
  it('without temperature, top-k or top-p (or with invalid ones) is the plain softmax over every token', () => {
    const logits = [0.2, 1.5, -0.3];
    const want = { ids: [1, 0, 2], probs: [1, 0, 2].map((i) => softmax(logits)[i]!) };
    for (const params of [{}, { temperature: 0 }, { temperature: -2 }, { topK: 0 }, { topK: -1 }, { topP: 1 }]) {
      const got = candidateDistribution(logits, params);
      expect(got.ids, JSON.stringify(params)).toEqual(want.ids);
      got.probs.forEach((p, i) => expect(p, JSON.stringify(params)).toBeCloseTo(want.probs[i]!, 12));
    }
  });

  it('drops NaN logits and orders ties by id', () => {
    expect(candidateDistribution([1, Number.NaN, 2, Number.NaN], {}).ids).toEqual([2, 0]);
    expect(candidateDistribution([5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5], {}).ids).toEqual([
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
    ]);
    expect(candidateDistribution([1, 2, 1, 2, 1], {}).ids).toEqual([1, 3, 0, 2, 4]);
  });

  it('stays finite at large logits and any temperature (the max is subtracted after scaling)', () => {
    for (const temperature of [0.5, 1, 2]) {
      const { probs } = candidateDistribution([1000, 999], { temperature });
      expect(probs[0]).toBeCloseTo(1 / (1 + Math.exp(-1 / temperature)), 12);
      expect(probs[1]).toBeCloseTo(1 - probs[0]!, 12);
    }
  });

  it('top-p 1 keeps a token whose probability rounds away beside a certain one', () => {
    expect(candidateDistribution([0, -50], { topP: 1 }).ids).toEqual([0, 1]);
    expect(candidateDistribution([0, -50], { topP: 0.999 }).ids).toEqual([0]);
  });
});

describe('sampleToken', () => {
  it('draws by inverse CDF: a uniform exactly at a boundary goes to the next token; leftover mass to the last', () => {
    expect(sampleToken([0, 0], { temperature: 1 }, fixed(0.49))).toBe(0);
    expect(sampleToken([0, 0], { temperature: 1 }, fixed(0.5))).toBe(1);
    expect(sampleToken([0, 0], { temperature: 1 }, fixed(1))).toBe(1); // rounding sliver
    expect(sampleToken([0, 0, 0, 0], { temperature: 1, topK: 2 }, fixed(0.999))).toBe(1);
  });
});

describe('logProbOf', () => {
  it('subtracts the largest logit wherever it is', () => {
    expect(logProbOf([1000, 0], 0)).toBeCloseTo(0, 12);
    expect(logProbOf([0, 1000, 0], 1)).toBeCloseTo(0, 12);
    expect(logProbOf([0, 1000, 0], 0)).toBeCloseTo(-1000, 9);
  });
});
