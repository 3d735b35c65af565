// Text <-> token ids through @huggingface/tokenizers (pure JS: works in Node and in the Worker).
import { Tokenizer } from '@huggingface/tokenizers';

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

export class TextTokenizer {
  /** Id of `<|endoftext|>` (GPT-NeoX / Mamba's end of sequence) when the vocabulary has it. */
  readonly eosId: number | undefined;

  constructor(private readonly tokenizer: Tokenizer) {
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

  /** Number of entries in the tokenizer's vocabulary, added tokens included (can be below the model's padded vocab). */
  get vocabSize(): number {
    return this.tokenizer.get_vocab(true).size;
  }
}

/** `json` is the parsed tokenizer.json; `config` the optional tokenizer_config.json. */
export function loadTokenizer(json: unknown, config: unknown = {}): TextTokenizer {
  if (typeof json !== 'object' || json === null || !('model' in json)) {
    throw new TokenizerError('not a tokenizers JSON file (no "model" field)');
  }
  try {
    return new TextTokenizer(new Tokenizer(json, (config ?? {}) as object));
  } catch (err) {
    throw new TokenizerError(`invalid tokenizer: ${(err as Error).message}`);
  }
}
