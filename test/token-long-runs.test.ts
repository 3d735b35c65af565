// Runs longer than MAX_RUN_CHARS with no safe cut (a CJK paragraph without punctuation, a combining-mark bomb) are
// no longer refused: mamba/token-budget.ts cuts them every SLICE_CHARS for the count, so no encode call is longer,
// and counts FORCED_CUT_SLACK per forced cut so the estimate stays at or above the whole text's count. Texts whose
// runs are all shorter are still sliced only at safe cuts (exact: test/token-budget.test.ts).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { byteLevelTokenizerJson } from '../mamba/byte-tokenizer.ts';
import {
  FORCED_CUT_SLACK,
  MAX_RUN_CHARS,
  SLICE_CHARS,
  countTokensInSlices,
  measurePrompt,
  slicesOf,
} from '../mamba/token-budget.ts';
import { loadTokenizer } from '../mamba/tokenizer.ts';
import { REPO } from './runner/harness.ts';

const shipped = loadTokenizer(JSON.parse(readFileSync(join(REPO, 'models/deciserve-mamba/tokenizer.json'), 'utf8')));
const tiny = loadTokenizer(byteLevelTokenizerJson().json);
const HAN = '中文的段落没有空格这是一个很长的句子我们需要测试分词器的速度和正确性';
/** `n` Han characters in a row: no whitespace, digit or punctuation anywhere. */
const cjkParagraph = (n: number) => Array.from({ length: n }, (_, i) => HAN[(i * 7) % HAN.length]).join('');
// Letters, Han, marks, emoji (surrogate pairs), punctuation: no whitespace and no digit, so one run throughout.
const RUN_ALPHABET = ['中', '文', 'a', 'Z', 'e', '\u0301', 'é', '😀', '!', "'", '-', 'th', 'ing', '/', '_'];

function runText(seed: number): string {
  let x = seed;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 8;
  const symbols = 1 + (seed % RUN_ALPHABET.length);
  return Array.from({ length: 60 + (seed % 240) }, () => RUN_ALPHABET[next() % symbols]).join('');
}

const isLow = (c: number) => c >= 0xdc00 && c <= 0xdfff;
const isHigh = (c: number) => c >= 0xd800 && c <= 0xdbff;

describe.each([
  ['shipped (Digits first)', shipped],
  ['tiny byte-level', tiny],
] as const)('%s tokenizer', (_, tok) => {
  it('forced slices cover the text, never split a surrogate pair, and count at or above the whole on 400 runs', async () => {
    let forcedTotal = 0;
    for (let seed = 1; seed <= 400; seed++) {
      const text = runText(seed);
      const sliceChars = 5 + (seed % 11);
      const maxRunChars = sliceChars + (seed % 7);
      const slices = [...slicesOf(text, tok.splitsDigits, sliceChars, maxRunChars)];
      expect(slices.map((s) => s.slice).join('')).toBe(text);
      for (const { slice, forced } of slices) {
        expect(slice.length).toBeLessThanOrEqual(forced ? sliceChars : Math.max(sliceChars, maxRunChars) + 1);
        expect(isLow(slice.charCodeAt(0)) || isHigh(slice.charCodeAt(slice.length - 1)), JSON.stringify(text)).toBe(
          false,
        );
      }
      const forced = slices.filter((s) => s.forced).length;
      forcedTotal += forced;
      const counted = await countTokensInSlices(tok, text, {
        limit: 1e9,
        sliceChars,
        maxRunChars,
        pause: async () => {},
      });
      const whole = tok.encode(text).length;
      expect(counted.forcedCuts).toBe(forced);
      expect(counted.tokens, JSON.stringify(text)).toBeGreaterThanOrEqual(whole);
      expect(counted.tokens).toBeLessThanOrEqual(whole + (2 + FORCED_CUT_SLACK) * forced);
    }
    expect(forcedTotal).toBeGreaterThan(1000); // the texts are long runs: cuts were forced all along
  });

  it('a text whose runs are all within MAX_RUN_CHARS gets no forced cut, and its count stays exact', async () => {
    const text = `${cjkParagraph(MAX_RUN_CHARS)} ${cjkParagraph(MAX_RUN_CHARS - 1)}`;
    const slices = [...slicesOf(text, tok.splitsDigits)];
    expect(slices.some((s) => s.forced)).toBe(false);
    expect(await countTokensInSlices(tok, text, { limit: 1e9 })).toEqual({
      tokens: tok.encode(text).length,
      complete: true,
      forcedCuts: 0,
    });
  });
});

describe('FORCED_CUT_SLACK', () => {
  it('covers a cut that counts one token fewer than the whole (found among 20,000 short runs)', async () => {
    const text = "😀't'😀文"; // cut after the emoji: 4 + 9 tokens, the whole 14
    const options = { limit: 1e9, sliceChars: 2, maxRunChars: 6, pause: async () => {} };
    expect([...slicesOf(text, shipped.splitsDigits, 2, 6)]).toEqual([
      { slice: '😀', forced: true },
      { slice: "'t'😀文", forced: false },
    ]);
    expect(shipped.encode('😀').length + shipped.encode("'t'😀文").length).toBe(shipped.encode(text).length - 1);
    expect(await countTokensInSlices(shipped, text, options)).toEqual({
      tokens: shipped.encode(text).length,
      complete: true,
      forcedCuts: 1,
    });
  });
});

describe('the long CJK paragraph of issue #13 (shipped tokenizer)', () => {
  it('40,000 Han characters in a row: accepted with an estimate just above the exact count, in slices of 2,048', async () => {
    const text = cjkParagraph(40_000);
    const slices = [...slicesOf(text, shipped.splitsDigits)];
    // Forced slices of 2,048 until the rest of the run fits MAX_RUN_CHARS, which is encoded whole (as before).
    const forced = slices.filter((s) => s.forced).length;
    expect(forced).toBe(Math.ceil((40_000 - MAX_RUN_CHARS) / SLICE_CHARS));
    expect(slices.map((s) => s.slice.length)).toEqual([
      ...Array(forced).fill(SLICE_CHARS),
      40_000 - forced * SLICE_CHARS,
    ]);
    const exact = shipped.encode(text).length;
    const cost = await measurePrompt(shipped, [text], 262_144);
    expect(cost).toMatchObject({ ok: true, estimated: true });
    const tokens = (cost as { tokens: number }).tokens;
    expect(tokens).toBeGreaterThanOrEqual(exact);
    expect(tokens).toBeLessThanOrEqual(exact + 3 * forced);
  });

  it('is still refused past the limit, counting stopping a slice past it', async () => {
    expect(await measurePrompt(shipped, [cjkParagraph(40_000)], 20_000)).toMatchObject({
      ok: false,
      reason: 'counted',
      tokens: expect.any(Number),
    });
    const early = await measurePrompt(shipped, [cjkParagraph(40_000)], 20_000);
    expect((early as { tokens: number }).tokens).toBeLessThan(20_000 + 3 * SLICE_CHARS + 1);
  });
});
