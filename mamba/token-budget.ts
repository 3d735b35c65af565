// Counting a prompt's tokens without letting one request hold the event loop (issue #13: a 600,000-digit prompt
// blocked /healthz for 21-34 s). Three steps, cheapest first:
//  1. bounds from one pass over the characters: with byte-level BPE no token spans more than `longestTokenBytes`
//     bytes, and the shipped tokenizer (Digits(individual_digits) first) gives every ASCII digit its own token, so
//     tokens >= digits + otherBytes / longestTokenBytes; a lower bound over the limit is refused at once;
//  2. a cap on runs that no pre-tokenizer boundary splits (BPE works on such a run as one piece);
//  3. the exact count in slices cut only where the pre-tokenizers always cut, with a yield between slices and an
//     early stop past the limit, so the sum equals the whole text's count and each slice is a few ms of CPU.
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

/** A run this long costs ~50 ms to encode (marks or letters, bench/results/token-budget.json). */
export const MAX_RUN_CHARS = 8192;
/** Characters per encode call between yields (~10-25 ms of CPU for typical text). */
export const SLICE_CHARS = 4096;

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

export function tokenBounds(text: string, shape: TokenizerShape): TokenBounds {
  const { splitsDigits, longestTokenBytes } = shape;
  let digits = 0;
  let bytes = 0;
  let run = 0;
  let longestRun = 0;
  let prevDigit = false;
  let prevSpace = true; // no cut before the first character
  for (let i = 0; i < text.length; i++) {
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
  return { lower: digits + Math.ceil((bytes - digits) / longestTokenBytes), upper: bytes, utf8Bytes: bytes, longestRun };
}

/** Slices of about `sliceChars` (longer only where a run has no safe cut), whose token counts add up exactly. */
export function* safeSlices(text: string, splitsDigits: boolean, sliceChars = SLICE_CHARS): Generator<string> {
  const safeCut_ = (i: number) => safeCut(text, i, splitsDigits);
  let start = 0;
  while (text.length - start > sliceChars) {
    let cut = start + sliceChars;
    while (cut > start + 1 && !safeCut_(cut)) cut--;
    if (cut === start + 1 && !safeCut_(cut)) {
      cut = start + sliceChars; // no cut behind: look ahead (the run cap keeps this bounded)
      while (cut < text.length && !safeCut_(cut)) cut++;
    }
    yield text.slice(start, cut);
    start = cut;
  }
  if (start < text.length) yield text.slice(start);
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
}

/** The exact token count (or the first count past `limit`), yielding to the event loop between slices. */
export async function countTokensInSlices(
  tokenizer: CountingTokenizer & TokenizerShape,
  text: string,
  options: { limit: number; sliceChars?: number; pause?: () => Promise<void> },
): Promise<SlicedCount> {
  const pause = options.pause ?? yieldToEventLoop;
  let tokens = 0;
  let first = true;
  for (const slice of safeSlices(text, tokenizer.splitsDigits, options.sliceChars)) {
    if (!first) await nextTurn(pause);
    first = false;
    tokens += tokenizer.encode(slice).length;
    if (tokens > options.limit) return { tokens, complete: false };
  }
  return { tokens, complete: true };
}

/** Longest vocabulary entry in bytes (byte-level BPE: one character of a vocabulary string is one byte). */
export function longestTokenBytes(vocab: Iterable<string>): number {
  let longest = 1;
  for (const token of vocab) if (token.length > longest) longest = token.length;
  return longest;
}
