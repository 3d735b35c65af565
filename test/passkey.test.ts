// The passkey task's prompt assembly and judging (format shared with train/).
import { describe, expect, it } from 'vitest';
import { byteLevelTokenizerJson } from '../mamba/byte-tokenizer.ts';
import {
  buildPasskeyPrompt,
  encodeCorpus,
  fillKey,
  haystackText,
  judgePasskey,
  PASSKEY_NEEDLE,
  PASSKEY_QUESTION,
  passkeyRng,
  roundHalfEven,
  runPasskey,
} from '../mamba/passkey.ts';
import { randomHaystack } from '../mamba/random-checkpoint.ts';
import { createRng } from '../mamba/rng.ts';
import { loadTokenizer } from '../mamba/tokenizer.ts';
import { tinyModel } from './helpers.ts';

const tokenizer = loadTokenizer(byteLevelTokenizerJson().json);
const hay = tokenizer.encode(haystackText(randomHaystack(1, 600)));

describe('passkey prompts', () => {
  it('are exactly the target length: hay[:n] + needle + hay[n:m] + question, n = round(depth·m)', () => {
    for (const depth of [0, 0.25, 0.5, 1]) {
      const p = buildPasskeyPrompt(tokenizer, hay, 300, depth, createRng(4));
      const needle = tokenizer.encode(fillKey(PASSKEY_NEEDLE, p.key));
      const question = tokenizer.encode(PASSKEY_QUESTION);
      const m = 300 - needle.length - question.length;
      expect(p.ids).toHaveLength(300);
      expect(p.needleStart).toBe(roundHalfEven(depth * m));
      expect(p.ids.slice(p.needleStart, p.needleEnd)).toEqual(needle);
      expect(p.ids.slice(-question.length)).toEqual(question);
      expect(p.protect).toBe(question.length);
      // the filler is the haystack read from the offset, wrapping around
      const filler = [...p.ids.slice(0, p.needleStart), ...p.ids.slice(p.needleEnd, 300 - question.length)];
      filler.forEach((id, i) => expect(id).toBe(hay[(p.offset + i) % hay.length]));
      expect(tokenizer.decode(p.ids)).toContain(`The pass key is ${p.key}. Remember it. ${p.key} is the pass key.`);
    }
  });

  it('draw 5-digit keys from the seed, reproducibly', () => {
    const a = buildPasskeyPrompt(tokenizer, hay, 200, 0.5, passkeyRng(0, 200, 0.5, 3));
    const b = buildPasskeyPrompt(tokenizer, hay, 200, 0.5, passkeyRng(0, 200, 0.5, 3));
    const c = buildPasskeyPrompt(tokenizer, hay, 200, 0.5, passkeyRng(0, 200, 0.5, 4));
    expect(a).toEqual(b);
    expect(a.key).not.toBe(c.key);
    for (let i = 0; i < 50; i++) {
      const { key } = buildPasskeyPrompt(tokenizer, hay, 200, 0.5, createRng(i));
      expect(key).toBeGreaterThanOrEqual(10000);
      expect(key).toBeLessThanOrEqual(99999);
    }
  });

  it('refuse lengths too short for needle and question, and bad depths', () => {
    expect(() => buildPasskeyPrompt(tokenizer, hay, 10, 0.5, createRng(0))).toThrow(/shorter than the needle/);
    expect(() => buildPasskeyPrompt(tokenizer, hay, 200, 1.5, createRng(0))).toThrow(/depth/);
  });

  it("haystack text has no digits; rounding is Python's", () => {
    expect(haystackText('In 1961, 3 men.<|endoftext|>Next\tpage')).toBe('In , men. Next page');
    expect(encodeCorpus(tokenizer, 'a b\n\nc d')).toEqual([...tokenizer.encode('a b'), ...tokenizer.encode('\n\nc d')]);
    expect([0.5, 1.5, 2.5, 2.4, 2.6, -0.5, -1.5].map(roundHalfEven)).toEqual([0, 2, 2, 2, 3, 0, -2]);
  });
});

describe('judging', () => {
  it('is correct when the first run of digits is the key', () => {
    expect(judgePasskey(' 71432. Remember', 71432)).toBe(true);
    expect(judgePasskey(' 7143', 71432)).toBe(false);
    expect(judgePasskey(' 714321', 71432)).toBe(false);
    expect(judgePasskey(' is 12 and 71432', 71432)).toBe(false);
    expect(judgePasskey(' nothing', 71432)).toBe(false);
  });
});

describe('runPasskey', () => {
  it('runs every (length, depth, sample) for each mode and tallies accuracy', async () => {
    const { engine } = tinyModel({ nLayer: 2, seed: 1 });
    const seen: string[] = [];
    const { cells, samples } = await runPasskey(engine, tokenizer, hay, {
      lengths: [80, 120],
      depths: [0, 1],
      samples: 2,
      seed: 0,
      modes: ['mamba', 'decimamba'],
      decimation: { layers: [1], beta: 0.5, lBase: 16, minSeqLen: 4 },
      onSample: (s) => seen.push(`${s.length}/${s.depth}/${s.sample}/${s.mode}`),
    });
    expect(cells).toHaveLength(8);
    expect(samples).toHaveLength(16);
    expect(new Set(seen).size).toBe(16);
    for (const c of cells)
      expect(c.correct).toBe(
        samples.filter((s) => s.length === c.length && s.depth === c.depth && s.mode === c.mode && s.correct).length,
      );
    // both modes see the same keys
    expect(samples.filter((s) => s.mode === 'mamba').map((s) => s.key)).toEqual(
      samples.filter((s) => s.mode === 'decimamba').map((s) => s.key),
    );
  });
});
