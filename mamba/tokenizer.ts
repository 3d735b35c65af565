// Text <-> token ids through @huggingface/tokenizers (pure JS: works in Node and in the Worker).
import { Tokenizer } from '@huggingface/tokenizers';
import { longestTokenBytes } from './token-budget.ts';

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

export class TextTokenizer {
  /** Id of `<|endoftext|>` (GPT-NeoX / Mamba's end of sequence) when the vocabulary has it. */
  readonly eosId: number | undefined;

  /**
   * @param splitsDigits the pre-tokenizer isolates every digit first (GPT-NeoX's Digits(individual_digits)), which
   *   mamba/token-budget.ts relies on for its bounds and slices.
   */
  constructor(
    private readonly tokenizer: Tokenizer,
    readonly splitsDigits = false,
  ) {
    this.eosId = tokenizer.token_to_id('<|endoftext|>');
  }

  /** Token ids for `text`; no BOS/EOS or other special tokens are added. */
  encode(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text for `ids`, byte-faithful (no clean-up of spaces). Ids outside the tokenizer's vocabulary (vocab padding) decode to nothing. */
  decode(ids: ArrayLike<number>, options: { skipSpecialTokens?: boolean } = {}): string {
    return this.tokenizer.decode(Array.from(ids), {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: false,
    });
  }

  /** Longest vocabulary entry (added tokens included) in bytes: byte-level BPE spells each byte as one character. */
  get longestTokenBytes(): number {
    return (this.longest ??= longestTokenBytes(this.tokenizer.get_vocab(true).keys()));
  }

  private longest: number | undefined;

  /** Number of entries in the tokenizer's vocabulary, added tokens included (can be below the model's padded vocab). */
  get vocabSize(): number {
    return this.tokenizer.get_vocab(true).size;
  }
}

interface PreTokenizerJson {
  type?: string;
  individual_digits?: boolean;
  pretokenizers?: PreTokenizerJson[];
}

/** Digits(individual_digits: true) alone or first in a Sequence: every digit is a pre-token before anything else. */
function splitsDigitsFirst(pre: unknown): boolean {
  const p = pre as PreTokenizerJson | null | undefined;
  const first = p?.type === 'Sequence' ? p.pretokenizers?.[0] : p;
  return first?.type === 'Digits' && first.individual_digits === true;
}

/** `json` is the parsed tokenizer.json; `config` the optional tokenizer_config.json. */
export function loadTokenizer(json: unknown, config: unknown = {}): TextTokenizer {
  if (typeof json !== 'object' || json === null || !('model' in json)) {
    throw new TokenizerError('not a tokenizers JSON file (no "model" field)');
  }
  try {
    return new TextTokenizer(
      new Tokenizer(json, (config ?? {}) as object),
      splitsDigitsFirst((json as { pre_tokenizer?: unknown }).pre_tokenizer),
    );
  } catch (err) {
    throw new TokenizerError(`invalid tokenizer: ${(err as Error).message}`);
  }
}
