// A pool of tokenizer threads (token-pool-thread.ts) for Node (the Worker build never imports this): a pass's prompts
// are encoded on several cores at once, and the thread that calls `encode` only copies text over and ids back, so
// the engine thread can drive the GPU (pass N) while the pool encodes pass N+1 (issue #15). Texts are cut into
// small batches, all handed out at once to the threads with the fewest characters outstanding: the pool needs nothing
// more from the calling thread until the answers, because that thread may sit in a synchronous GPU call meanwhile.
// A prompt that cannot be tokenized fails alone (PromptTokenizeError, a 400-class input error); a thread that dies
// fails only the calls it was serving, and the next call starts a new thread in its place.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { FromPoolThread, PoolThreadAnswer, TokenPoolThreadData } from './token-pool-thread.ts';

/** The text itself cannot be tokenized: fails the same way on every retry, so the caller answers 400 / invalid_job. */
export class PromptTokenizeError extends Error {
  override name = 'PromptTokenizeError';
  readonly status = 400;
  constructor(
    readonly index: number,
    message: string,
  ) {
    super(message);
  }
}

/** Leave one core to the thread that drives the engine; the pool takes the rest. */
export function defaultPoolSize(cores = availableParallelism()): number {
  return Math.max(1, cores - 1);
}

/** Each call is cut into about this many batches per thread, so the threads finish close together. */
const BATCHES_PER_THREAD = 4;

interface Batch {
  id: number;
  texts: string[];
  /** Characters in texts: the tokenizer's time is about proportional to them. */
  chars: number;
  resolve: (answers: PoolThreadAnswer[]) => void;
  reject: (err: Error) => void;
}
interface Slot {
  worker: Worker;
  ready: Promise<void>;
  outstanding: Map<number, Batch>;
  /** Characters of the outstanding batches. */
  chars: number;
}

/** A .ts module on a worker thread through tsx (threads do not inherit tsx's loader hooks), as token-meter.ts does. */
function tsWorker(entry: URL, workerData: unknown): Worker {
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(code, { eval: true, workerData });
}

/** From a bundle the thread is token-pool-thread.js (runner/build.ts) or .mjs (shared/device/pack.sh) beside it. */
function startThread(data: TokenPoolThreadData): Worker {
  const ext = /\.(m?js)$/.exec(new URL(import.meta.url).pathname)?.[1];
  if (!ext) return tsWorker(new URL('./token-pool-thread.ts', import.meta.url), data);
  return new Worker(new URL(`./token-pool-thread.${ext}`, import.meta.url), { workerData: data });
}

export class TokenPool {
  readonly size: number;
  private readonly slots: Array<Slot | null>;
  private nextId = 1;
  private live = 0;
  private closed = false;

  constructor(
    private readonly data: TokenPoolThreadData,
    threads = defaultPoolSize(),
  ) {
    if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`token pool: threads must be ≥ 1 (${threads})`);
    this.size = threads;
    this.slots = new Array<Slot | null>(threads).fill(null);
  }

  /** Threads started and not yet exited (0 after close). */
  get liveThreads(): number {
    return this.live;
  }

  /** Starts every thread and waits until each has loaded the tokenizer (otherwise threads start on first use). */
  async start(): Promise<void> {
    await Promise.all(this.slots.map((_, i) => this.slot(i).ready));
  }

  /**
   * Token ids for each text, in the order given. A text that throws in the tokenizer gets a PromptTokenizeError in
   * its place; the call itself rejects only if a thread dies under it or the pool is closed.
   */
  async encode(texts: readonly string[]): Promise<Array<number[] | PromptTokenizeError>> {
    if (this.closed) throw new Error('token pool is closed');
    if (texts.length === 0) return [];
    const done = this.cut(texts).map(
      (piece) =>
        new Promise<PoolThreadAnswer[]>((resolve, reject) => {
          const chars = Math.max(
            1,
            piece.reduce((n, t) => n + (typeof t === 'string' ? t.length : 0), 0),
          );
          this.dispatch({ id: this.nextId++, texts: piece, chars, resolve, reject });
        }),
    );
    const answers = (await Promise.all(done)).flat();
    return answers.map((a, i) =>
      a instanceof Int32Array ? Array.from(a) : new PromptTokenizeError(i, `prompt cannot be tokenized: ${a.error}`),
    );
  }

  /** Stops every thread; calls still in flight reject. */
  async close(): Promise<void> {
    this.closed = true; // batches out on threads fail as the threads exit
    await Promise.all(this.slots.map((slot) => slot?.worker.terminate()));
  }

  /** Consecutive texts grouped into batches of about total/(size·BATCHES_PER_THREAD) characters, one text at least. */
  private cut(texts: readonly string[]): string[][] {
    const total = texts.reduce((n, t) => n + (typeof t === 'string' ? t.length : 0), 0);
    const target = Math.max(1, total / (this.size * BATCHES_PER_THREAD));
    const pieces: string[][] = [];
    let piece: string[] = [];
    let chars = 0;
    for (const text of texts) {
      piece.push(text);
      chars += typeof text === 'string' ? text.length : 0;
      if (chars >= target) {
        pieces.push(piece);
        piece = [];
        chars = 0;
      }
    }
    if (piece.length > 0) pieces.push(piece);
    return pieces;
  }

  /** Hands a batch to the thread with the fewest characters outstanding (starting it if it is not running). */
  private dispatch(batch: Batch): void {
    let best = 0;
    for (let i = 1; i < this.size; i++) if ((this.slots[i]?.chars ?? 0) < (this.slots[best]?.chars ?? 0)) best = i;
    const slot = this.slot(best);
    slot.outstanding.set(batch.id, batch);
    slot.chars += batch.chars;
    slot.worker.ref(); // a thread with work keeps the process alive until the answer arrives
    slot.ready.then(
      () => slot.worker.postMessage({ id: batch.id, texts: batch.texts }),
      () => {}, // the exit handler has already failed this batch
    );
  }

  private slot(i: number): Slot {
    const existing = this.slots[i];
    if (existing) return existing;
    const worker = startThread(this.data);
    this.live++;
    worker.unref(); // an idle pool does not keep the process alive
    let markReady!: () => void;
    let failReady!: (err: Error) => void;
    const slot: Slot = {
      worker,
      ready: new Promise<void>((resolve, reject) => ((markReady = resolve), (failReady = reject))),
      outstanding: new Map(),
      chars: 0,
    };
    slot.ready.catch(() => {}); // a failed start is reported through the batches it fails
    this.slots[i] = slot;
    worker.on('message', (msg: FromPoolThread) => {
      if ('ready' in msg) return markReady();
      const batch = slot.outstanding.get(msg.id);
      if (!batch) return;
      slot.outstanding.delete(msg.id);
      slot.chars -= batch.chars;
      if (slot.outstanding.size === 0) worker.unref();
      batch.resolve(msg.results);
    });
    let exitError: Error | null = null;
    worker.on('error', (err) => (exitError = err));
    worker.on('exit', (code) => {
      this.live--;
      if (this.slots[i] === slot) this.slots[i] = null;
      const err = new Error(`token thread exited (code ${code})${exitError ? `: ${exitError.message}` : ''}`);
      failReady(err);
      for (const batch of slot.outstanding.values()) {
        batch.reject(err);
      }
      slot.outstanding.clear();
      slot.chars = 0; // the next call starts a new thread in its place
    });
    return slot;
  }
}
