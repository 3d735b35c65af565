// Text generation on top of any MambaEngine, for one prompt or many at once: one batched prefill (each prompt with its
// own DeciMamba settings), then one batched decode step per token for all still-running sequences. A job's tokens do
// not depend on the batch it runs in (its own sampling stream per seed, stop strings, stop ids; the last token is
// never stepped), so generate() alone and generateBatch() give it the same tokens on every engine.
import { asError } from './engine-base.ts';
import {
  type DecimationConfig,
  type DecodeSession,
  GREEDY_AHEAD,
  type KeptIndices,
  type MambaEngine,
  type PrefillResult,
} from './engine.ts';
import { createRng, type Rng } from './rng.ts';
import { isGreedy, sampleToken, type SamplingParams } from './sampling.ts';

/** What generation needs from a tokenizer (TextTokenizer fits). */
export interface Detokenizer {
  decode(ids: ArrayLike<number>): string;
  encode?(text: string): number[];
  eosId?: number;
}

const DEFAULT_MAX_TOKENS = 64;
const maxTokensOf = (options: GenerateOptions): number => options.maxTokens ?? DEFAULT_MAX_TOKENS;

export interface GenerateOptions extends SamplingParams {
  /** Default DEFAULT_MAX_TOKENS (64). */
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

export interface GenerateJob {
  ids: ArrayLike<number>;
  options?: GenerateOptions;
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
  const [result] = await generateBatch(engine, tokenizer, [{ ids, options }]);
  if (result instanceof Error) throw result;
  return result!;
}

interface Running {
  job: number;
  options: GenerateOptions;
  prefill: PrefillResult;
  rng: Rng;
  stopIds: Set<number>;
  tokens: number[];
  text: string;
  finish: FinishReason | null;
}

/** Generates for every job; a job that cannot run gets its Error in its slot, the others run. */
export async function generateBatch(
  engine: MambaEngine,
  tokenizer: Detokenizer | null,
  jobs: GenerateJob[],
): Promise<Array<GenerateResult | Error>> {
  const results: Array<GenerateResult | Error | null> = jobs.map((j) =>
    (j.options?.stop ?? []).length > 0 && !tokenizer ? new Error('generate: stop strings need a tokenizer') : null,
  );
  const todo = jobs.flatMap((job, i) => (results[i] ? [] : [{ i, job }]));
  const t0 = performance.now();
  const prefills = await engine.prefillBatchSettled(
    todo.map(({ job }) => ({
      ids: job.ids,
      options: {
        decimation: job.options?.decimation ?? null,
        protect: job.options?.protect ?? 1,
        logitPositions: 'last',
      },
    })),
  );
  const t1 = performance.now();
  const running: Running[] = [];
  todo.forEach(({ i, job }, j) => {
    const prefill = prefills[j]!;
    if (prefill instanceof Error) {
      results[i] = prefill;
      return;
    }
    const options = job.options ?? {};
    const stopIds = new Set(options.stopTokenIds ?? (tokenizer?.eosId !== undefined ? [tokenizer.eosId] : []));
    running.push({
      job: i,
      options,
      prefill,
      rng: createRng(options.seed ?? 0),
      stopIds,
      tokens: [],
      text: '',
      finish: null,
    });
  });
  if (running.length > 0)
    await decode(engine, tokenizer, running).catch((err: unknown) => {
      for (const r of running) results[r.job] = asError(err);
    });
  const t2 = performance.now();
  for (const r of running) {
    if (results[r.job]) continue;
    const promptTokens = jobs[r.job]!.ids.length;
    const decodeSteps = Math.max(r.tokens.length - 1, 0);
    results[r.job] = {
      promptTokens,
      tokens: r.tokens,
      text: r.text,
      finishReason: r.finish ?? 'length',
      kept: r.prefill.kept,
      timings: {
        prefillMs: t1 - t0,
        decodeMs: t2 - t1,
        prefillTokensPerSecond: promptTokens / Math.max((t1 - t0) / 1000, 1e-9),
        decodeTokensPerSecond: decodeSteps / Math.max((t2 - t1) / 1000, 1e-9),
      },
    };
  }
  return results as Array<GenerateResult | Error>;
}

/** n greedy steps from `tokens` ([n, batch] argmax rows): the session's own stepGreedy, else step after step. */
export async function greedySteps(session: DecodeSession, tokens: ArrayLike<number>, n: number): Promise<Int32Array> {
  if (session.stepGreedy) return session.stepGreedy(tokens, n);
  const rows = new Int32Array(n * session.batch);
  let next: ArrayLike<number> = tokens;
  for (let i = 0; i < n; i++) {
    next = (await session.step(next, { argmax: true })).tokens!;
    rows.set(next, i * session.batch);
  }
  return rows;
}

/** Samples, checks stops and steps every running sequence until all have finished. */
async function decode(engine: MambaEngine, tokenizer: Detokenizer | null, running: Running[]): Promise<void> {
  const vocab = engine.config.vocabSize;
  // All greedy: the engine picks the tokens itself, several steps at a time where it can (stepGreedy), and sends no
  // logits back. Each step's input is the previous argmax whatever the host decides, which is the token choose()
  // keeps for every sequence still running; a finished sequence's later tokens are never read.
  const allGreedy = running.every((r) => isGreedy(r.options));
  let logits = running.map((r) => r.prefill.logits[0]!);
  let greedy: Int32Array | null = null;
  const session = engine.openDecode(running.map((r) => r.prefill.state));
  const B = running.length;
  const chooseAll = (row: (r: Running, b: number) => number) =>
    running.map((r, b) => (r.finish ? -1 : choose(r, row(r, b))));
  try {
    for (;;) {
      const next = chooseAll((r, b) => (greedy ? greedy[b]! : sampleToken(logits[b]!, r.options, r.rng)));
      if (next.every((t) => t < 0)) break;
      if (!allGreedy) {
        const out = await session.step(next, { logits: true });
        logits = running.map((_, b) => out.logits!.subarray(b * vocab, (b + 1) * vocab));
        continue;
      }
      // several steps a call only where the engine takes them on its side (a CPU engine's steps cost the same either
      // way, and its streamed tokens would come in bursts), and no more than the longest budget left can use
      const left = Math.max(...running.map((r) => (r.finish ? 0 : maxTokensOf(r.options) - r.tokens.length)));
      const n = session.stepGreedy ? Math.max(1, Math.min(GREEDY_AHEAD, left)) : 1;
      const rows = await greedySteps(session, next, n);
      for (let k = 0; k < n - 1; k++) if (chooseAll((_, b) => rows[k * B + b]!).every((t) => t < 0)) break;
      greedy = rows.subarray((n - 1) * B, n * B);
    }
  } finally {
    session.dispose();
  }

  /** Takes `token` for r (or ends r); returns the token to step on, or −1 when r is done. */
  function choose(r: Running, token: number): number {
    const maxTokens = maxTokensOf(r.options);
    if (r.tokens.length >= maxTokens) {
      r.finish = 'length';
      return -1;
    }
    if (r.stopIds.has(token)) {
      r.finish = 'eos';
      return -1;
    }
    r.tokens.push(token);
    if (tokenizer) r.text = tokenizer.decode(r.tokens);
    r.options.onToken?.(token, r.text);
    const stopAt = findStop(r.text, r.options.stop ?? []);
    if (stopAt >= 0) {
      r.text = r.text.slice(0, stopAt);
      r.finish = 'stop';
      return -1;
    }
    if (r.tokens.length >= maxTokens) {
      r.finish = 'length'; // no step for a token we will not use
      return -1;
    }
    return token;
  }
}
