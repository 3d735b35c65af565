// Prompt measuring (bounds, then the exact token count; token-budget.ts) on a worker thread, for the runner's intake
// and the edge on Node (Node only: the Worker build never imports this). The event loop only copies the text over, so /healthz and other requests go on while a
// token bomb is counted (issue #13). Requests queue on the one thread; if it dies, the next call starts a new one.
import { Worker } from 'node:worker_threads';
import type { PromptCost, PromptMeter } from './token-budget.ts';
import type { TokenThreadData } from './token-thread.ts';

/** A .ts module on a worker thread through tsx (threads do not inherit tsx's loader hooks), as the engine host does. */
function tsWorker(entry: URL, workerData: unknown): Worker {
  const api = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(api)}).then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(code, { eval: true, workerData });
}

type Reply = { id: number; cost?: PromptCost; error?: string } | { ready: true };

export class ThreadMeter implements PromptMeter {
  private thread: Worker | null = null;
  private ready: Promise<Worker> | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (c: PromptCost) => void; reject: (e: Error) => void }>();

  constructor(private readonly data: TokenThreadData) {}

  private start(): Promise<Worker> {
    // From the runner's esbuild bundle (runner/build.ts) the thread is token-thread.js beside it; from source, TypeScript.
    const compiled = import.meta.url.endsWith('.js');
    const entry = new URL(compiled ? './token-thread.js' : './token-thread.ts', import.meta.url);
    const thread = compiled ? new Worker(entry, { workerData: this.data }) : tsWorker(entry, this.data);
    thread.unref(); // an idle meter does not keep the process alive
    this.thread = thread;
    const fail = (err: Error) => {
      if (this.thread !== thread) return;
      this.thread = null;
      this.ready = null;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    thread.on('error', fail);
    thread.on('exit', (code) => fail(new Error(`token thread exited (code ${code})`)));
    return new Promise<Worker>((resolve, reject) => {
      thread.once('error', reject);
      thread.once('exit', (code) => reject(new Error(`token thread exited (code ${code}) before it was ready`)));
      thread.on('message', (msg: Reply) => {
        if ('ready' in msg) return resolve(thread);
        const waiter = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.cost) waiter?.resolve(msg.cost);
        else waiter?.reject(new Error(msg.error ?? 'token thread failed'));
      });
    });
  }

  async measure(texts: string[], maxTokens: number, options: { keepIds?: boolean } = {}): Promise<PromptCost> {
    const thread = await (this.ready ??= this.start());
    if (thread !== this.thread) throw new Error('token thread exited');
    const id = this.nextId++;
    return new Promise<PromptCost>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      thread.postMessage({ id, texts, maxTokens, keepIds: options.keepIds === true });
    });
  }

  /** Stops the thread; calls still pending fail (the exit handler above), a later call starts a new thread. */
  async close(): Promise<void> {
    await this.thread?.terminate();
  }
}
