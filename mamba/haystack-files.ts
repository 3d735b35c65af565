// Node-only: passkey haystacks read from disk, cleaned and tokenized as mamba/passkey.ts expects. The held-out sets
// (bench/quality/haystacks/<set>-<split>.txt) are swept by the runner's GPU quality check and the API passkey bench
// alike, so their location, names, split and depths are defined once here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeCorpus, haystackText, type PasskeyTokenizer } from './passkey.ts';

type Tokenizer = Pick<PasskeyTokenizer, 'encode'>;

/** A haystack file (a model's haystack.txt, or a held-out set) as corpus token ids. */
export function readHaystack(tokenizer: Tokenizer, path: string): number[] {
  return encodeCorpus(tokenizer, haystackText(readFileSync(path, 'utf8')));
}

/** The held-out sets by name, from `dir`/<set>-<split>.txt. */
export function readHeldOutHaystacks(
  tokenizer: Tokenizer,
  dir: string,
  sets: string[],
  split: string,
): Record<string, number[]> {
  return Object.fromEntries(sets.map((s) => [s, readHaystack(tokenizer, join(dir, `${s}-${split}.txt`))]));
}

/** parseArgs options for a sweep over the held-out sets (comma-separated lists). */
export const HELD_OUT_SWEEP_OPTIONS = {
  haystacks: { type: 'string', default: 'bench/quality/haystacks' },
  sets: { type: 'string', default: 'jargon,gcide,fortunes' },
  split: { type: 'string', default: 'test' },
  depths: { type: 'string', default: '0,0.25,0.5,0.75,1' },
} as const;
