// The bounds and slices of mamba/token-budget.ts on the shipped tokenizer (Digits first) and the tiny byte-level
// one (no Digits): slices must add up to exactly the whole text's tokens, the bounds must hold, runs must be measured.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { byteLevelTokenizerJson } from '../mamba/byte-tokenizer.ts';
import {
  countTokensInSlices,
  measurePrompt,
  safeSlices,
  tokenBounds,
  tokenBoundsInTurns,
} from '../mamba/token-budget.ts';
import { loadTokenizer } from '../mamba/tokenizer.ts';
import { REPO } from './runner/harness.ts';

const shipped = loadTokenizer(JSON.parse(readFileSync(join(REPO, 'models/deciserve-mamba/tokenizer.json'), 'utf8')));
const tiny = loadTokenizer(byteLevelTokenizerJson().json);
const ALPHABET = [
  ' ',
  '  ',
  '\n',
  '\t',
  'a',
  'Z',
  'é',
  'e\u0301',
  '1',
  '23',
  "'s",
  "'",
  ',',
  '😀',
  '\u00a0',
  '\u2003',
  '中',
  '<|endoftext|>',
  '\r\n',
  'the',
];

function randomText(seed: number): string {
  let x = seed;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) % ALPHABET.length;
  return Array.from({ length: 40 + (seed % 300) }, () => ALPHABET[next()]).join('');
}

describe.each([
  ['shipped (Digits first)', shipped],
  ['tiny byte-level', tiny],
] as const)('%s tokenizer', (_, tok) => {
  it('knows whether digits are split first', () => {
    expect(tok.splitsDigits).toBe(tok === shipped);
  });

  it('slices add up to the whole text, and the bounds hold, on 300 random texts', () => {
    for (let seed = 1; seed <= 300; seed++) {
      const text = randomText(seed);
      const whole = tok.encode(text);
      const sliced = [...safeSlices(text, tok.splitsDigits, 1 + (seed % 17))].flatMap((s) => tok.encode(s));
      expect(sliced, JSON.stringify(text)).toEqual(whole);
      const b = tokenBounds(text, tok);
      expect(b.lower).toBeLessThanOrEqual(whole.length);
      expect(b.upper).toBeGreaterThanOrEqual(whole.length);
    }
  });

  it('bounds scanned in chunks (any size, cut anywhere: digits, spaces, surrogate pairs) equal the one-pass bounds', async () => {
    for (let seed = 1; seed <= 120; seed++) {
      const text = randomText(seed);
      const chunked = await tokenBoundsInTurns(text, tok, { chunkChars: 1 + (seed % 13), pause: async () => {} });
      expect(chunked, JSON.stringify(text)).toEqual(tokenBounds(text, tok));
    }
    expect(await tokenBoundsInTurns('', tok)).toEqual(tokenBounds('', tok));
  });

  it('counts exactly, or stops just past the limit', async () => {
    const text = readFileSync(join(REPO, 'models/deciserve-mamba/haystack.txt'), 'utf8').slice(0, 40_000);
    const exact = tok.encode(text).length;
    expect(await countTokensInSlices(tok, text, { limit: exact })).toEqual({
      tokens: exact,
      complete: true,
      forcedCuts: 0,
    });
    const early = await countTokensInSlices(tok, text, { limit: 1000 });
    expect(early.complete).toBe(false);
    expect(early.tokens).toBeGreaterThan(1000);
    expect(early.tokens).toBeLessThan(exact);
  });
});

describe('bounds on the bombs of issue #13', () => {
  it('600,000 digits: at least 600,000 tokens on the shipped tokenizer, one run on the tiny one', () => {
    const digits = '7'.repeat(600_000);
    expect(tokenBounds(digits, shipped).lower).toBe(600_000);
    expect(tokenBounds(digits, shipped).longestRun).toBe(1);
    expect(tokenBounds(digits, tiny).longestRun).toBe(600_000);
  });

  it('combining accents: one long run, 2 bytes each', () => {
    const bomb = 'e' + '\u0301'.repeat(30_000);
    expect(tokenBounds(bomb, shipped)).toMatchObject({ utf8Bytes: 60_001, longestRun: 30_001 });
  });

  it('a run is cut by whitespace, and by digits only where digits are split first', () => {
    expect(tokenBounds('abc def', shipped).longestRun).toBe(4); // " def"
    expect(tokenBounds('abc1def', shipped).longestRun).toBe(3);
    expect(tokenBounds('abc1def', tiny).longestRun).toBe(7);
  });
});

describe('bounds in turns (issue #13: /healthz must not wait for a scan)', () => {
  it('yields to the event loop before every chunk (4 chunks: other callbacks run 4 times meanwhile)', async () => {
    const text = 'word '.repeat(50_000); // 250,000 characters: 4 chunks of 65,536
    let loops = 0;
    let stop = false;
    const spin = () => void (stop || (loops++, setImmediate(spin)));
    setImmediate(spin);
    await tokenBoundsInTurns(text, shipped);
    stop = true;
    expect(loops).toBeGreaterThanOrEqual(4);
    loops = 0;
    stop = false;
    setImmediate(spin);
    tokenBounds(text, shipped); // the one-pass form holds the loop: nothing runs meanwhile
    expect(loops).toBe(0);
    stop = true;
  });

  it('the exact count of prompt + continuation, or why it is refused (lower bound, counted past the limit)', async () => {
    expect(await measurePrompt(shipped, ['7'.repeat(200_000)], 131_072)).toEqual({
      ok: false,
      reason: 'lower_bound',
      tokens: 200_000,
    });
    expect(await measurePrompt(shipped, ['7'.repeat(100_000), '7'.repeat(40_000)], 131_072)).toMatchObject({
      ok: false,
      reason: 'lower_bound',
    });
    // A run past MAX_RUN_CHARS is no longer refused: it is counted in forced slices (test/token-long-runs.test.ts).
    expect(await measurePrompt(shipped, ['e' + '\u0301'.repeat(9000)], 131_072)).toMatchObject({
      ok: true,
      estimated: true,
    });
    const prose = ' the end'.repeat(70_000); // 140,000 tokens, over the limit only when counted
    expect(await measurePrompt(shipped, [prose], 131_072)).toMatchObject({ ok: false, reason: 'counted' });
    const text = 'In the beginning God created the heaven and the earth. ';
    expect(await measurePrompt(shipped, [text, 'x y'], 1000)).toEqual({
      ok: true,
      tokens: shipped.encode(text).length + shipped.encode('x y').length,
    });
  });
});
