// Counting a prompt's tokens without letting one request hold the event loop (issue #13: a 600,000-digit prompt
// blocked /healthz for 21-34 s). Three steps, cheapest first:
//  1. bounds from one pass over the characters: with byte-level BPE no token spans more than `longestTokenBytes`
//     bytes, and the shipped tokenizer (Digits(individual_digits) first) gives every ASCII digit its own token, so
//     tokens >= digits + otherBytes / longestTokenBytes; a lower bound over the limit is refused at once;
//  2. the count in slices cut only where the pre-tokenizers always cut, with a yield between slices and an early
//     stop past the limit, so the sum equals the whole text's count and each slice is a few ms of CPU;
//  3. a run that no pre-tokenizer boundary splits for more than MAX_RUN_CHARS (a long CJK paragraph without
//     punctuation, a combining-mark bomb) is cut every SLICE_CHARS anyway, keeping each encode call bounded; its count
//     is then an estimate, made an upper bound in practice by one token per forced cut (FORCED_CUT_SLACK).
// The @huggingface/tokenizers API has no incremental or interruptible encode, so the slicing is ours.

export interface CountingTokenizer {
  encode(text: string): number[];
}

/** What the bounds and cuts rely on (TextTokenizer has both). */
export interface TokenizerShape {
  /** Longest vocabulary entry in bytes. */
  readonly longestTokenBytes: number;
  /** A Digits(individual_digits) pre-tokenizer runs first: every ASCII digit is a token of its own. */
  readonly splitsDigits: boolean;
}

export interface TokenBounds {
  lower: number;
  /** Byte-level BPE: every token is at least one UTF-8 byte. */
  upper: number;
  utf8Bytes: number;
  /** Longest run of characters with no safe cut inside it. */
  longestRun: number;
}

/**
 * Runs up to this long are encoded whole (~50 ms for marks or letters, bench/results/token-budget.json; ~120 ms
 * for CJK on a loaded 2-core box); longer ones are cut by force for the count.
 */
export const MAX_RUN_CHARS = 8192;
/**
 * Tokens added per forced cut so the estimate is not below the whole text's count: on 3,000 random cuts per
 * tokenizer (shipped and tiny byte-level; letters, CJK, marks, emoji, punctuation), two slices counted 1 token
 * fewer than the whole in 2 cases, the same in 2,741 and 1-2 more in the rest (test/token-budget.test.ts checks).
 */
export const FORCED_CUT_SLACK = 1;
/** Characters per encode call between yields (0.5-6 ms of CPU, the worst being short accented words). */
export const SLICE_CHARS = 2048;
/** Characters tokenBoundsInTurns scans per event-loop turn (~0.5 ms; the whole pass is ~8 ms per million). */
export const BOUNDS_CHUNK_CHARS = 65_536;

const isDigit = (code: number) => code >= 48 && code <= 57;
// The whitespace the ByteLevel regex's \s matches in ASCII and Latin-1 (a cut is made only before these).
const isSpace = (code: number) => code === 32 || (code >= 9 && code <= 13) || code === 0xa0 || code === 0x85;

/**
 * True when encode(text) === encode(text[0:i]) ++ encode(text[i:]): before a space that follows a non-space (no
 * ByteLevel regex alternative carries trailing whitespace and none looks behind) and next to an ASCII digit
 * (Digits runs first and isolates each digit as a pre-token).
 */
function safeCut(text: string, i: number, splitsDigits: boolean): boolean {
  const prev = text.charCodeAt(i - 1);
  const here = text.charCodeAt(i);
  return (splitsDigits && (isDigit(prev) || isDigit(here))) || (isSpace(here) && !isSpace(prev));
}

interface BoundsScan {
  digits: number;
  bytes: number;
  run: number;
  longestRun: number;
  prevDigit: boolean;
  prevSpace: boolean;
}

const newScan = (): BoundsScan => ({ digits: 0, bytes: 0, run: 0, longestRun: 0, prevDigit: false, prevSpace: true });

function finishScan(s: BoundsScan, longestTokenBytes: number): TokenBounds {
  return {
    lower: s.digits + Math.ceil((s.bytes - s.digits) / longestTokenBytes),
    upper: s.bytes,
    utf8Bytes: s.bytes,
    longestRun: s.longestRun,
  };
}

export function tokenBounds(text: string, shape: TokenizerShape): TokenBounds {
  const scan = newScan();
  scanBounds(text, shape.splitsDigits, scan, 0, text.length);
  return finishScan(scan, shape.longestTokenBytes);
}

/**
 * tokenBounds in chunks of `chunkChars`, each in its own turn of the shared queue below (the first too: bodies that
 * arrive together do not scan back to back), so a 4 MiB prompt holds the event loop ~0.5 ms at a time.
 */
export async function tokenBoundsInTurns(
  text: string,
  shape: TokenizerShape,
  options: { chunkChars?: number; pause?: () => Promise<void> } = {},
): Promise<TokenBounds> {
  const chunk = options.chunkChars ?? BOUNDS_CHUNK_CHARS;
  const scan = newScan();
  let from = 0;
  do {
    await nextTurn(options.pause ?? yieldToEventLoop);
    scanBounds(text, shape.splitsDigits, scan, from, Math.min(text.length, from + chunk));
    from += chunk;
  } while (from < text.length);
  return finishScan(scan, shape.longestTokenBytes);
}

/** Bounds of each text (prompt, continuation), scanned in turns. */
export async function boundTexts(
  texts: string[],
  shape: TokenizerShape,
  pause?: () => Promise<void>,
): Promise<TokenBounds[]> {
  const out: TokenBounds[] = [];
  for (const text of texts) out.push(await tokenBoundsInTurns(text, shape, { pause }));
  return out;
}

/** Adds characters [from, to) of `text` to `state` (a scan is resumable at any index). */
function scanBounds(text: string, splitsDigits: boolean, state: BoundsScan, from: number, to: number): void {
  let { digits, bytes, run, longestRun, prevDigit, prevSpace } = state;
  for (let i = from; i < to; i++) {
    const code = text.charCodeAt(i);
    const digit = splitsDigits && isDigit(code);
    const space = isSpace(code);
    if (digit) digits++;
    // UTF-8 length from UTF-16 units: a surrogate pair is 4 bytes (2 per unit); lone surrogates become U+FFFD (3).
    bytes += code < 0x80 ? 1 : code < 0x800 ? 2 : code >= 0xd800 && code <= 0xdfff ? 2 : 3;
    // safeCut(text, i), inlined: this loop is the whole cost of a bound (~10 ms per million characters).
    run = i > 0 && (digit || prevDigit || (space && !prevSpace)) ? 1 : run + 1;
    if (run > longestRun) longestRun = run;
    prevDigit = digit;
    prevSpace = space;
  }
  Object.assign(state, { digits, bytes, run, longestRun, prevDigit, prevSpace });
}

/**
 * Slices of about `sliceChars`, longer only where a run has no safe cut, whose token counts add up exactly, unless
 * `forced`: no safe cut within `maxRunChars` of the slice's start, so it was cut at `sliceChars` (never inside a
 * surrogate pair).
 */
export function* slicesOf(
  text: string,
  splitsDigits: boolean,
  sliceChars = SLICE_CHARS,
  maxRunChars = MAX_RUN_CHARS,
): Generator<{ slice: string; forced: boolean }> {
  const safeCut_ = (i: number) => safeCut(text, i, splitsDigits);
  let start = 0;
  while (text.length - start > sliceChars) {
    let cut = start + sliceChars;
    let forced = false;
    while (cut > start + 1 && !safeCut_(cut)) cut--;
    if (cut === start + 1 && !safeCut_(cut)) {
      cut = start + sliceChars; // no cut behind: look ahead, at most to maxRunChars from the start
      const reach = Math.min(text.length, start + Math.max(maxRunChars, sliceChars));
      while (cut < reach && !safeCut_(cut)) cut++;
      if (cut === reach && reach < text.length && !safeCut_(cut)) {
        forced = true;
        cut = start + sliceChars;
        if (isLowSurrogate(text.charCodeAt(cut)) && isHighSurrogate(text.charCodeAt(cut - 1))) cut--;
      }
    }
    yield { slice: text.slice(start, cut), forced };
    start = cut;
  }
  if (start < text.length) yield { slice: text.slice(start), forced: false };
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;
const isLowSurrogate = (code: number) => code >= 0xdc00 && code <= 0xdfff;

/** The slices of slicesOf alone. */
export function* safeSlices(
  text: string,
  splitsDigits: boolean,
  sliceChars = SLICE_CHARS,
  maxRunChars = MAX_RUN_CHARS,
): Generator<string> {
  for (const { slice } of slicesOf(text, splitsDigits, sliceChars, maxRunChars)) yield slice;
}

/**
 * One macrotask turn: setImmediate where it exists (Node: I/O is polled before the next one runs, whereas timers
 * due in the same phase run back to back), else a zero timer (workerd).
 */
export const yieldToEventLoop = (): Promise<void> =>
  new Promise<void>((resolve) => (typeof setImmediate === 'function' ? setImmediate(resolve) : setTimeout(resolve, 0)));

// All counts in this process or isolate take turns through one FIFO chain, one slice per event-loop turn, so 20
// bombs in flight cost other requests one slice of waiting, not twenty.
let turns: Promise<void> = Promise.resolve();
function nextTurn(pause: () => Promise<void>): Promise<void> {
  const mine = turns.then(pause);
  turns = mine.catch(() => {});
  return mine;
}

export interface SlicedCount {
  tokens: number;
  /** False when counting stopped early because `limit` was passed (tokens is then > limit, not the total). */
  complete: boolean;
  /** Cuts made inside runs longer than MAX_RUN_CHARS: when > 0, `tokens` is an estimate (FORCED_CUT_SLACK each). */
  forcedCuts: number;
  /** With `keepIds` and no forced cut: the token ids (the slices' ids concatenated = encode of the whole text). */
  ids?: number[];
}

/**
 * The exact token count (or the first count past `limit`), yielding to the event loop between slices; for a text
 * with a run longer than `maxRunChars`, an estimate that counts FORCED_CUT_SLACK tokens per forced cut on top.
 */
export async function countTokensInSlices(
  tokenizer: CountingTokenizer & TokenizerShape,
  text: string,
  options: {
    limit: number;
    sliceChars?: number;
    maxRunChars?: number;
    pause?: () => Promise<void>;
    keepIds?: boolean;
  },
): Promise<SlicedCount> {
  const pause = options.pause ?? yieldToEventLoop;
  const ids: number[] = [];
  let tokens = 0;
  let forcedCuts = 0;
  for (const { slice, forced } of slicesOf(text, tokenizer.splitsDigits, options.sliceChars, options.maxRunChars)) {
    await nextTurn(pause); // the first slice too: requests whose bounds ended in the same turn take turns
    const encoded = tokenizer.encode(slice);
    tokens += encoded.length + (forced ? FORCED_CUT_SLACK : 0);
    if (forced) forcedCuts++;
    if (tokens > options.limit) return { tokens, complete: false, forcedCuts };
    if (options.keepIds && forcedCuts === 0) for (const id of encoded) ids.push(id);
  }
  return { tokens, complete: true, forcedCuts, ...(options.keepIds && forcedCuts === 0 ? { ids } : {}) };
}

/** Longest vocabulary entry in bytes (byte-level BPE: one character of a vocabulary string is one byte). */
export function longestTokenBytes(vocab: Iterable<string>): number {
  let longest = 1;
  for (const token of vocab) if (token.length > longest) longest = token.length;
  return longest;
}

/** What a prompt costs against a token limit, or why it is refused (the callers turn these into their 400s). */
export type PromptCost =
  | {
      ok: true;
      tokens: number;
      /** A run longer than MAX_RUN_CHARS was cut by force: `tokens` is an estimate (see FORCED_CUT_SLACK). */
      estimated?: true;
      /** With `keepIds`: each text's token ids (exact even where `tokens` is an estimate). */
      ids?: Uint32Array[];
    }
  | { ok: false; reason: 'lower_bound'; tokens: number } // at least `tokens`, from the bounds alone
  | { ok: false; reason: 'counted'; tokens: number }; // more than the limit, counted up to `tokens`

/** Where prompts are measured: in this event loop by turns (Workers) or on a thread of its own (mamba/token-meter.ts). */
export interface PromptMeter {
  /** `keepIds`: also return the token ids (the runner's intake tokenizes a job once and stores them with it). */
  measure(texts: string[], maxTokens: number, options?: { keepIds?: boolean }): Promise<PromptCost>;
}

/** Bounds first, then the exact count in slices; `pause` between chunks (no-op on a thread of its own). */
export async function measurePrompt(
  tokenizer: CountingTokenizer & TokenizerShape,
  texts: string[],
  maxTokens: number,
  pause?: () => Promise<void>,
  keepIds = false,
): Promise<PromptCost> {
  const bounds = await boundTexts(texts, tokenizer, pause);
  const lower = bounds.reduce((n, b) => n + b.lower, 0);
  if (lower > maxTokens) return { ok: false, reason: 'lower_bound', tokens: lower };
  let tokens = 0;
  let forcedCuts = 0;
  const ids: Uint32Array[] = [];
  for (const text of texts) {
    const counted = await countTokensInSlices(tokenizer, text, { limit: maxTokens - tokens, pause, keepIds });
    tokens += counted.tokens;
    forcedCuts += counted.forcedCuts;
    if (!counted.complete) return { ok: false, reason: 'counted', tokens };
    // A forced cut can change the ids at the cut: such a text is encoded whole, as the pass used to.
    if (keepIds) ids.push(Uint32Array.from(counted.ids ?? tokenizer.encode(text)));
  }
  return {
    ok: true,
    tokens,
    ...(forcedCuts > 0 ? { estimated: true as const } : {}),
    ...(keepIds ? { ids } : {}),
  };
}

export const inLoopMeter = (tokenizer: CountingTokenizer & TokenizerShape): PromptMeter => ({
  measure: (texts, maxTokens, options) => measurePrompt(tokenizer, texts, maxTokens, undefined, options?.keepIds),
});
