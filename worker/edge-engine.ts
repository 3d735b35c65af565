// The ONNX engine as a request at the edge sees it: yields to the event loop around every engine call, which
//  - lets a stream flush each token to the client and other requests in the isolate take turns,
//  - moves the clock: on Cloudflare, Date.now()/performance.now() only advance at I/O, and a timer counts, so
//    generate()'s prefill/decode timings and Server-Timing stay meaningful there,
//  - stops the work when the client has gone (the request's AbortSignal);
// and remembers the logits that chose the current token, for logprobs.
import type {
  MambaConfig,
  MambaEngine,
  ModelState,
  PrefillOptions,
  PrefillResult,
  StepResult,
} from '../mamba/engine.ts';

export const nextTick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

export class ClientGoneError extends Error {
  override name = 'ClientGoneError';
}

export class ObservedEngine implements MambaEngine {
  /** Logits of the last prefill position or step: the distribution the next token is sampled from. */
  lastLogits: Float32Array | null = null;

  constructor(
    private readonly inner: MambaEngine,
    private readonly signal?: AbortSignal,
  ) {}

  get name(): string {
    return this.inner.name;
  }

  get config(): MambaConfig {
    return this.inner.config;
  }

  private async tick(): Promise<void> {
    await nextTick();
    if (this.signal?.aborted) throw new ClientGoneError('the client closed the connection');
  }

  async prefill(ids: ArrayLike<number>, options?: PrefillOptions): Promise<PrefillResult> {
    await this.tick();
    const result = await this.inner.prefill(ids, options);
    this.lastLogits = result.logits[result.logits.length - 1] ?? null;
    await this.tick();
    return result;
  }

  async step(token: number, state: ModelState): Promise<StepResult> {
    await this.tick();
    const result = await this.inner.step(token, state);
    this.lastLogits = result.logits;
    return result;
  }
}
