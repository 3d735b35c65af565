// A small GPT-2-style byte-level BPE tokenizer.json built in code, for random checkpoints and tests:
// every byte is a token (so any text round-trips), plus a few dozen English merges so text compresses a little.

/** GPT-2's bytes_to_unicode: printable stand-ins for the 256 byte values. */
function bytesToUnicode(): string[] {
  const direct: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) direct.push(b);
  for (let b = 0xa1; b <= 0xac; b++) direct.push(b);
  for (let b = 0xae; b <= 0xff; b++) direct.push(b);
  const chars: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    chars[b] = direct.includes(b) ? String.fromCodePoint(b) : String.fromCodePoint(256 + extra++);
  }
  return chars;
}

// Merges in priority order; each side must already be a token. 'Ġ' is the byte-level space.
const MERGES: [string, string][] = [
  ['Ġ', 't'],
  ['h', 'e'],
  ['i', 'n'],
  ['e', 'r'],
  ['a', 'n'],
  ['o', 'n'],
  ['Ġt', 'he'],
  ['r', 'e'],
  ['Ġ', 'a'],
  ['e', 'd'],
  ['Ġ', 's'],
  ['n', 'd'],
  ['i', 't'],
  ['o', 'r'],
  ['e', 's'],
  ['Ġ', 'w'],
  ['Ġ', 'o'],
  ['a', 't'],
  ['Ġ', 'c'],
  ['e', 'n'],
  ['i', 's'],
  ['Ġ', 'p'],
  ['Ġ', 'b'],
  ['Ġ', 'i'],
  ['in', 'g'],
  ['Ġ', 'f'],
  ['Ġ', 'm'],
  ['o', 'u'],
  ['a', 'l'],
  ['a', 'r'],
  ['l', 'e'],
  ['Ġa', 'nd'],
  ['Ġo', 'f'],
  ['Ġ', 'h'],
  ['Ġ', 'd'],
  ['Ġt', 'o'],
  ['Ġi', 's'],
  ['Ġ', 'k'],
  ['e', 'y'],
  ['Ġk', 'ey'],
  ['Ġp', 'a'],
  ['Ġpa', 's'],
  ['Ġpas', 's'],
];

export const EOS_TOKEN = '<|endoftext|>';

/** tokenizer.json for the byte-level BPE: id 0 is <|endoftext|>, ids 1..256 the bytes, then the merges. */
export function byteLevelTokenizerJson(): { json: Record<string, unknown>; vocabSize: number } {
  const vocab: Record<string, number> = { [EOS_TOKEN]: 0 };
  bytesToUnicode().forEach((ch, b) => (vocab[ch] = 1 + b));
  let next = 257;
  for (const [left, right] of MERGES) {
    if (!(left in vocab) || !(right in vocab))
      throw new Error(`byte tokenizer: merge ${left} ${right} uses an unknown token`);
    vocab[left + right] = next++;
  }
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 0, content: EOS_TOKEN, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: MERGES.map(([l, r]) => `${l} ${r}`),
    },
  };
  return { json, vocabSize: next };
}
