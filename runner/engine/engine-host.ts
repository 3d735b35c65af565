// Main-thread handle on the engine thread: sends it passes, gets outcomes back, and reports if it dies.
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { EngineKind } from './engine-kinds.ts';
import type { PassContext, PassItem, PassOutcome } from '../pass/pass-types.ts';

export interface EngineThreadData {
  kind: EngineKind;
  modelDir: string;
  /** Which device this thread drives (GPU index for the CUDA engine; CPU engines ignore it). */
  device: number;
  context: PassContext;
  /** Tokenizer threads of this engine thread's pool (mamba/token-pool.ts); 0 or absent: tokenize on the engine thread. */
  tokenThreads?: number;
  /** pino level for the thread's own log lines (suite progress). */
  logLevel?: string;
}

export type ToEngineThread = { type: 'pass'; passId: number; items: PassItem[] };
export type FromEngineThread =
  | { type: 'ready'; engine: string; nLayer: number }
  | { type: 'fatal'; message: string }
  | { type: 'pass-done'; passId: number; outcomes: PassOutcome[] }
  | { type: 'pass-failed'; passId: number; message: string };

/** Starts a .ts module in a worker thread through tsx (worker threads do not inherit tsx's loader hooks). */
function tsWorker(entry: URL, workerData: unknown): Worker {
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(code, { eval: true, workerData });
}

export class EngineHost extends EventEmitter<{ fatal: [Error] }> {
  private nextPassId = 1;
  private readonly pending = new Map<number, { resolve: (o: PassOutcome[]) => void; reject: (e: Error) => void }>();
  private dead: Error | null = null;

  private constructor(
    private readonly thread: Worker,
    readonly engineName: string,
  ) {
    super();
    thread.on('message', (msg: FromEngineThread) => {
      if (msg.type !== 'pass-done' && msg.type !== 'pass-failed') return;
      const waiter = this.pending.get(msg.passId);
      this.pending.delete(msg.passId);
      if (msg.type === 'pass-done') waiter?.resolve(msg.outcomes);
      else waiter?.reject(new Error(msg.message));
    });
    const die = (err: Error) => {
      if (this.dead) return;
      this.dead = err;
      for (const waiter of this.pending.values()) waiter.reject(err);
      this.pending.clear();
      this.emit('fatal', err);
    };
    thread.on('error', die);
    thread.on('exit', (code) => die(new Error(`engine thread exited (code ${code})`)));
  }

  static start(data: EngineThreadData): Promise<EngineHost> {
    // From the esbuild bundle (runner/build.ts) the thread is plain JS next to this file; from source, TypeScript.
    const compiled = import.meta.url.endsWith('.js');
    const entry = new URL(compiled ? './engine-thread.js' : './engine-thread.ts', import.meta.url);
    const thread = compiled ? new Worker(entry, { workerData: data }) : tsWorker(entry, data);
    return new Promise((resolve, reject) => {
      const onMessage = (msg: FromEngineThread) => {
        if (msg.type === 'ready') {
          cleanup();
          resolve(new EngineHost(thread, msg.engine));
        } else if (msg.type === 'fatal') {
          cleanup();
          void thread.terminate();
          reject(new Error(msg.message));
        }
      };
      const onError = (err: Error) => {
        cleanup();
        reject(err);
      };
      const cleanup = () => {
        thread.off('message', onMessage);
        thread.off('error', onError);
      };
      thread.on('message', onMessage);
      thread.on('error', onError);
    });
  }

  get alive(): boolean {
    return this.dead === null;
  }

  run(items: PassItem[]): Promise<PassOutcome[]> {
    if (this.dead) return Promise.reject(this.dead);
    const passId = this.nextPassId++;
    return new Promise((resolve, reject) => {
      this.pending.set(passId, { resolve, reject });
      this.thread.postMessage({ type: 'pass', passId, items } satisfies ToEngineThread);
    });
  }

  async close(): Promise<void> {
    this.dead ??= new Error('engine closed');
    this.thread.removeAllListeners('exit');
    await this.thread.terminate();
  }
}
