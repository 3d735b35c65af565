// Text generation on top of any MambaEngine: one prefill (optionally DeciMamba) then single-token steps.
import type { DecimationConfig, KeptIndices, MambaEngine } from './engine.ts';
import { createRng } from './rng.ts';
import { sampleToken, type SamplingParams } from './sampling.ts';

/** What generation needs from a tokenizer (TextTokenizer fits). */
export interface Detokenizer {
  decode(ids: ArrayLike<number>): string;
  encode?(text: string): number[];
  eosId?: number;
}

export interface GenerateOptions extends SamplingParams {
  /** Default 64. */
  maxTokens?: number;
  seed?: number;
  /** Generation ends when the decoded text contains one of these; the text is cut before it. */
  stop?: string[];
  /** Token ids that end generation (not included in the result). Default: the tokenizer's eos id, if any. */
  stopTokenIds?: number[];
  decimation?: DecimationConfig | null;
  /** Tail of the prompt that decimation keeps (e.g. the question). Default 1. */
  protect?: number;
  /** Called after each token with the text so far (before stop-string trimming). */
  onToken?: (token: number, text: string) => void;
}

export type FinishReason = 'length' | 'stop' | 'eos';

export interface GenerateResult {
  promptTokens: number;
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  kept: KeptIndices[];
  timings: {
    prefillMs: number;
    decodeMs: number;
    prefillTokensPerSecond: number;
    decodeTokensPerSecond: number;
  };
}

/** Earliest occurrence of any stop string in `text`, or -1. */
export function findStop(text: string, stops: string[]): number {
  let at = -1;
  for (const s of stops) {
    if (s === '') continue;
    const i = text.indexOf(s);
    if (i >= 0 && (at < 0 || i < at)) at = i;
  }
  return at;
}

export async function generate(
  engine: MambaEngine,
  tokenizer: Detokenizer | null,
  prompt: string | ArrayLike<number>,
  options: GenerateOptions = {},
): Promise<GenerateResult> {
  let ids: ArrayLike<number>;
  if (typeof prompt === 'string') {
    if (!tokenizer?.encode) throw new Error('generate: a text prompt needs a tokenizer with encode()');
    ids = tokenizer.encode(prompt);
  } else {
    ids = prompt;
  }
  const maxTokens = options.maxTokens ?? 64;
  const stops = options.stop ?? [];
  if (stops.length > 0 && !tokenizer) throw new Error('generate: stop strings need a tokenizer');
  const stopIds = new Set(options.stopTokenIds ?? (tokenizer?.eosId !== undefined ? [tokenizer.eosId] : []));
  const rng = createRng(options.seed ?? 0);

  const t0 = performance.now();
  const prefill = await engine.prefill(ids, {
    decimation: options.decimation ?? null,
    protect: options.protect ?? 1,
    logitPositions: 'last',
  });
  const t1 = performance.now();

  let logits = prefill.logits[0]!;
  let state = prefill.state;
  const tokens: number[] = [];
  let text = '';
  let finishReason: FinishReason = 'length';
  while (tokens.length < maxTokens) {
    const token = sampleToken(logits, options, rng);
    if (stopIds.has(token)) {
      finishReason = 'eos';
      break;
    }
    tokens.push(token);
    if (tokenizer) text = tokenizer.decode(tokens);
    options.onToken?.(token, text);
    const stopAt = findStop(text, stops);
    if (stopAt >= 0) {
      text = text.slice(0, stopAt);
      finishReason = 'stop';
      break;
    }
    if (tokens.length === maxTokens) break; // no step needed for a token we will not use
    ({ logits, state } = await engine.step(token, state));
  }
  const t2 = performance.now();

  const decodeSteps = Math.max(tokens.length - 1, 0);
  return {
    promptTokens: ids.length,
    tokens,
    text,
    finishReason,
    kept: prefill.kept,
    timings: {
      prefillMs: t1 - t0,
      decodeMs: t2 - t1,
      prefillTokensPerSecond: ids.length / Math.max((t1 - t0) / 1000, 1e-9),
      decodeTokensPerSecond: decodeSteps / Math.max((t2 - t1) / 1000, 1e-9),
    },
  };
}
