// The ONNX engine as a request at the edge sees it: yields to the event loop around every engine call, which
//  - lets a stream flush each token to the client and other requests in the isolate take turns,
//  - moves the clock: on Cloudflare, Date.now()/performance.now() only advance at I/O, and a timer counts, so
//    generate()'s prefill/decode timings and Server-Timing stay meaningful there,
//  - stops the work when the client has gone (the request's AbortSignal);
// and remembers the logits that chose the current token, for logprobs.
import type {
  DecodeSession,
  DecodeWant,
  MambaConfig,
  MambaEngine,
  ModelState,
  PrefillRequest,
  PrefillResult,
} from '../mamba/engine.ts';
import { EngineBase } from '../mamba/engine-base.ts';

export const nextTick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

export class ClientGoneError extends Error {
  override name = 'ClientGoneError';
}

export class ObservedEngine extends EngineBase {
  /** Logits of the last prefill position or step: the distribution the next token is sampled from. */
  lastLogits: Float32Array | null = null;

  constructor(
    private readonly inner: MambaEngine,
    private readonly signal?: AbortSignal,
  ) {
    super();
  }

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

  async prefillBatchSettled(requests: PrefillRequest[]): Promise<Array<PrefillResult | Error>> {
    await this.tick();
    const results = await this.inner.prefillBatchSettled(requests);
    const last = results[results.length - 1];
    this.lastLogits = last && !(last instanceof Error) ? (last.logits[last.logits.length - 1] ?? null) : null;
    await this.tick();
    return results;
  }

  /** Steps always bring the logits back (for logprobs), even when generation only asks for the greedy token. */
  openDecode(states: ModelState[]): DecodeSession {
    const inner = this.inner.openDecode(states);
    const { vocabSize } = this.config;
    return {
      batch: inner.batch,
      step: async (tokens: ArrayLike<number>, want: DecodeWant = { logits: true }) => {
        await this.tick();
        const out = await inner.step(tokens, { ...want, logits: true });
        this.lastLogits = out.logits!.subarray(0, vocabSize); // the edge decodes one sequence
        return out;
      },
      state: (b: number) => inner.state(b),
      dispose: () => inner.dispose(),
    };
  }
}
