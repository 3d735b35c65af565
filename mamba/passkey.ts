// The passkey retrieval task (mamba/README.md), shared by the CLI and the benchmarks. train/ implements the same
// format in Python; keep the strings and the assembly identical.
import type { DecimationConfig, MambaEngine } from './engine.ts';
import { generate } from './generate.ts';
import { createRng, mixSeed, type Rng } from './rng.ts';

export const PASSKEY_NEEDLE = ' The pass key is {key}. Remember it. {key} is the pass key.';
export const PASSKEY_QUESTION = ' What is the pass key? The pass key is';
export const PASSKEY_ANSWER = ' {key}.';
export const PASSKEY_KEY_MIN = 10000;
export const PASSKEY_KEY_MAX = 99999;
/** Greedy tokens decoded to read the answer. */
export const PASSKEY_ANSWER_TOKENS = 8;

export const fillKey = (template: string, key: number): string => template.replaceAll('{key}', String(key));

export interface PasskeyTokenizer {
  encode(text: string): number[];
  decode(ids: ArrayLike<number>): string;
  eosId?: number;
}

export const EOT = '<|endoftext|>';

/**
 * Held-out text without digits or document markers (the key must be the only number), runs of spaces/tabs collapsed:
 * train/data.py haystack_text.
 */
export function haystackText(text: string): string {
  return text
    .replaceAll(EOT, ' ')
    .replace(/\d/g, '')
    .replace(/[ \t]+/g, ' ');
}

/** One token stream; paragraphs are encoded separately and joined by their "\n\n" separators (train/data.py encode_corpus). */
export function encodeCorpus(tokenizer: Pick<PasskeyTokenizer, 'encode'>, text: string): number[] {
  const ids: number[] = [];
  text.split('\n\n').forEach((paragraph, i) => ids.push(...tokenizer.encode(i === 0 ? paragraph : '\n\n' + paragraph)));
  return ids;
}

/** Python's round(): halves go to the even neighbour (train/ uses it; Math.round would differ at .5). */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff !== 0.5) return Math.round(x);
  return floor % 2 === 0 ? floor : floor + 1;
}

export interface PasskeyPrompt {
  ids: number[];
  key: number;
  /** Token range of the needle in `ids`. */
  needleStart: number;
  needleEnd: number;
  /** Question token count = the tail DeciMamba must protect. */
  protect: number;
  /** Haystack offset (in tokens) the filler started from. */
  offset: number;
}

/**
 * hay[:n] + tok(NEEDLE) + hay[n:m] + tok(QUESTION), exactly `length` tokens, n = round(depth·m).
 * `hay` reads the tokenized haystack from a random offset, wrapping around. Draws: key, then offset.
 */
export function buildPasskeyPrompt(
  tokenizer: PasskeyTokenizer,
  haystackIds: ArrayLike<number>,
  length: number,
  depth: number,
  rng: Rng,
): PasskeyPrompt {
  if (haystackIds.length === 0) throw new Error('passkey: the haystack is empty');
  if (!(depth >= 0 && depth <= 1)) throw new RangeError(`passkey: depth must be in [0, 1], got ${depth}`);
  const key = PASSKEY_KEY_MIN + rng.int(PASSKEY_KEY_MAX - PASSKEY_KEY_MIN + 1);
  const offset = rng.int(haystackIds.length);
  const needle = tokenizer.encode(fillKey(PASSKEY_NEEDLE, key));
  const question = tokenizer.encode(PASSKEY_QUESTION);
  const m = length - needle.length - question.length;
  if (m < 0)
    throw new RangeError(
      `passkey: length ${length} is shorter than the needle and question (${needle.length + question.length} tokens)`,
    );
  const n = roundHalfEven(depth * m);
  const hay = (i: number): number => haystackIds[(offset + i) % haystackIds.length]!;
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(hay(i));
  ids.push(...needle);
  for (let i = n; i < m; i++) ids.push(hay(i));
  ids.push(...question);
  return { ids, key, needleStart: n, needleEnd: n + needle.length, protect: question.length, offset };
}

/** Correct when the first run of digits in the answer is the key. */
export function judgePasskey(answer: string, key: number): boolean {
  return /\d+/.exec(answer)?.[0] === String(key);
}

export type PasskeyMode = 'mamba' | 'decimamba';

export interface PasskeyCell {
  length: number;
  depth: number;
  mode: PasskeyMode;
  correct: number;
  total: number;
  accuracy: number;
}

export interface PasskeySample {
  length: number;
  depth: number;
  sample: number;
  mode: PasskeyMode;
  key: number;
  answer: string;
  correct: boolean;
  prefillMs: number;
}

export interface PasskeyRunOptions {
  lengths: number[];
  depths: number[];
  samples: number;
  seed: number;
  modes: PasskeyMode[];
  /** Used for the 'decimamba' mode: one config, or one per prompt length (the model's length-adaptive budget). */
  decimation: DecimationConfig | ((length: number) => DecimationConfig);
  onSample?: (sample: PasskeySample) => void;
}

/** The prompt for one (length, depth, sample) is the same for every mode and every engine given the seed. */
export function passkeyRng(seed: number, length: number, depth: number, sample: number): Rng {
  return createRng(mixSeed(seed, length, Math.round(depth * 1e6), sample));
}

export async function runPasskey(
  engine: MambaEngine,
  tokenizer: PasskeyTokenizer,
  haystackIds: ArrayLike<number>,
  options: PasskeyRunOptions,
): Promise<{ cells: PasskeyCell[]; samples: PasskeySample[] }> {
  const samples: PasskeySample[] = [];
  const cells: PasskeyCell[] = [];
  for (const length of options.lengths) {
    for (const depth of options.depths) {
      const tally = new Map<PasskeyMode, number>(options.modes.map((m) => [m, 0]));
      for (let i = 0; i < options.samples; i++) {
        const prompt = buildPasskeyPrompt(
          tokenizer,
          haystackIds,
          length,
          depth,
          passkeyRng(options.seed, length, depth, i),
        );
        for (const mode of options.modes) {
          const result = await generate(engine, tokenizer, prompt.ids, {
            maxTokens: PASSKEY_ANSWER_TOKENS,
            temperature: 0,
            stopTokenIds: [], // always 8 greedy tokens, as train/ scores them
            decimation:
              mode !== 'decimamba'
                ? null
                : typeof options.decimation === 'function'
                  ? options.decimation(length)
                  : options.decimation,
            protect: prompt.protect,
          });
          const correct = judgePasskey(result.text, prompt.key);
          if (correct) tally.set(mode, tally.get(mode)! + 1);
          const sample: PasskeySample = {
            length,
            depth,
            sample: i,
            mode,
            key: prompt.key,
            answer: result.text,
            correct,
            prefillMs: result.timings.prefillMs,
          };
          samples.push(sample);
          options.onSample?.(sample);
        }
      }
      for (const mode of options.modes) {
        const correct = tally.get(mode)!;
        cells.push({
          length,
          depth,
          mode,
          correct,
          total: options.samples,
          accuracy: options.samples ? correct / options.samples : 0,
        });
      }
    }
  }
  return { cells, samples };
}
