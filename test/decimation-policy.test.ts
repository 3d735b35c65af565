// The length-adaptive DeciMamba budget (deciserve.json lBaseByLength) and how a request's `decimation` mode picks it.
import { describe, expect, it } from 'vitest';
import { DecimationError, decimationForLength, lBaseForLength, validateLengthBudgets } from '../mamba/decimation.ts';
import { modelDefaultsFromCard } from '../mamba/model-defaults.ts';
import { jobRequestSchema, resolveDecimation } from '../protocol/job-request.ts';
import { formatAccuracy, wilsonInterval } from '../mamba/stats.ts';

const budgets = [
  [4000, 1500],
  [8000, 3000],
  [16000, 4000],
  [256000, 16000],
] as const;
const card = {
  trainingLength: 2048,
  decimation: { layers: [11], beta: 0.5, lBase: 8000, minSeqLen: 20, lBaseByLength: budgets },
};
const model = modelDefaultsFromCard(card, 12);
const job = (extra: Record<string, unknown> = {}) =>
  jobRequestSchema({ maxNewTokens: 64, maxPromptChars: 1e6 }).parse({
    type: 'completion',
    model: 'm',
    prompt: 'x',
    ...extra,
  });

describe('lBaseForLength', () => {
  it('returns the swept point exactly at its length', () => {
    for (const [length, lBase] of budgets) expect(lBaseForLength(budgets, length)).toBe(lBase);
  });
  it('interpolates log-log between points (geometric midpoint → geometric mean)', () => {
    expect(lBaseForLength(budgets, Math.sqrt(4000 * 8000))).toBe(Math.round(Math.sqrt(1500 * 3000)));
    const between = lBaseForLength(budgets, 12000);
    expect(between).toBeGreaterThan(3000);
    expect(between).toBeLessThan(4000);
  });
  it('holds the end values outside the swept range', () => {
    expect(lBaseForLength(budgets, 100)).toBe(1500);
    expect(lBaseForLength(budgets, 1_000_000)).toBe(16000);
  });
  it('refuses empty, unordered or non-integer budgets', () => {
    expect(() => validateLengthBudgets([])).toThrow(DecimationError);
    expect(() =>
      validateLengthBudgets([
        [8000, 1],
        [4000, 2],
      ]),
    ).toThrow(/ascending/);
    expect(() => validateLengthBudgets([[4000, 1.5]])).toThrow(/integers/);
    expect(() =>
      modelDefaultsFromCard({ ...card, decimation: { ...card.decimation, lBaseByLength: [[5, 0]] } }, 12),
    ).toThrow(DecimationError);
  });
  it('leaves the fixed form alone without budgets', () => {
    const fixed = { layers: [3], beta: 0.5, lBase: 77, minSeqLen: 1 };
    expect(decimationForLength(fixed, undefined, 50_000)).toBe(fixed);
    expect(decimationForLength(fixed, budgets, 8000)).toEqual({ ...fixed, lBase: 3000 });
  });
});

describe('resolveDecimation modes', () => {
  it('auto: plain Mamba up to the training length, then the budget for the prompt length', () => {
    expect(resolveDecimation(job(), 2048, model)).toBeNull();
    expect(resolveDecimation(job(), 8000, model)).toEqual({ layers: [11], beta: 0.5, lBase: 3000, minSeqLen: 20 });
    expect(resolveDecimation(job(), 256000, model)!.lBase).toBe(16000);
  });
  it('on: the budget at any length; fixed: the paper form with the card lBase', () => {
    expect(resolveDecimation(job({ decimation: 'on' }), 1000, model)!.lBase).toBe(1500);
    expect(resolveDecimation(job({ decimation: 'fixed' }), 8000, model)!.lBase).toBe(8000);
    expect(resolveDecimation(job({ decimation: 'fixed' }), 1000, model)).not.toBeNull();
    expect(resolveDecimation(job({ decimation: 'off' }), 256000, model)).toBeNull();
  });
  it('an explicit l_base is the fixed form whatever the mode', () => {
    expect(resolveDecimation(job({ decimation_params: { l_base: 123 } }), 64000, model)!.lBase).toBe(123);
  });
  it('a model card without budgets keeps its single L_base under auto', () => {
    const plain = modelDefaultsFromCard({ decimation: { layers: [1], beta: 0.5, lBase: 500, minSeqLen: 2 } }, 4);
    expect(plain.lBaseByLength).toBeUndefined();
    expect(resolveDecimation(job(), 100_000, plain)!.lBase).toBe(500);
  });
  it('refuses an unknown mode at the schema', () => {
    expect(() => job({ decimation: 'adaptive' })).toThrow();
  });
});

describe('accuracy intervals', () => {
  it('gives the Wilson 95% interval', () => {
    const [lo, hi] = wilsonInterval(116, 120);
    expect(lo).toBeCloseTo(0.9174, 3);
    expect(hi).toBeCloseTo(0.9869, 3);
    expect(wilsonInterval(0, 0)).toEqual([0, 1]);
    expect(formatAccuracy(120, 120)).toBe('100% (120/120, 97–100%)');
  });
});
