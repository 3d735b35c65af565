// What every engine shares on top of its two primitives (prefillBatchSettled, openDecode): single-request use as a
// batch of one, and, for engines that compute one sequence at a time (reference, ONNX), the batch as a loop.
import type {
  DecodeOutput,
  DecodeSession,
  DecodeWant,
  MambaConfig,
  MambaEngine,
  ModelState,
  PrefillOptions,
  PrefillRequest,
  PrefillResult,
  StepResult,
} from './engine.ts';
import { checkState, checkStepTokens } from './engine-input.ts';
import { argmax } from './sampling.ts';

export function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** R: the request type (the CUDA engine's requests may also ask for log-probabilities). */
export abstract class EngineBase<R extends PrefillRequest = PrefillRequest> implements MambaEngine {
  abstract readonly name: string;
  abstract readonly config: MambaConfig;
  readonly packsBatches: boolean = false;
  abstract prefillBatchSettled(requests: R[]): Promise<Array<PrefillResult | Error>>;
  abstract openDecode(states: ModelState[]): DecodeSession;

  async dispose(): Promise<void> {}

  async prefillBatch(requests: R[]): Promise<PrefillResult[]> {
    const results = await this.prefillBatchSettled(requests);
    const failed = results.find((r): r is Error => r instanceof Error);
    if (failed) throw failed;
    return results as PrefillResult[];
  }

  async prefill(ids: ArrayLike<number>, options?: PrefillOptions): Promise<PrefillResult> {
    const [result] = await this.prefillBatch([{ ids, options } as R]);
    return result!;
  }

  async step(token: number, state: ModelState): Promise<StepResult> {
    const session = this.openDecode([state]);
    try {
      const out = await session.step([token], { logits: true });
      return { logits: out.logits!, state: session.state(0) };
    } finally {
      session.dispose();
    }
  }
}

/** One sequence's step on a one-at-a-time engine; `token` is the greedy token when the engine computes it itself. */
export interface SequenceStep {
  logits: Float32Array | null;
  token?: number;
  state: ModelState;
}

/** An engine that runs one sequence at a time: a batched prefill is its requests in turn, a decode step likewise. */
export abstract class SequentialEngine extends EngineBase {
  protected abstract prefillOne(ids: ArrayLike<number>, options: PrefillOptions): Promise<PrefillResult>;
  /** One token on top of `state` (already checked), which it must leave unchanged. */
  abstract stepOne(token: number, state: ModelState, wantLogits: boolean): Promise<SequenceStep>;

  async prefillBatchSettled(requests: PrefillRequest[]): Promise<Array<PrefillResult | Error>> {
    const out: Array<PrefillResult | Error> = [];
    for (const r of requests) out.push(await this.prefillOne(r.ids, r.options ?? {}).catch(asError));
    return out;
  }

  openDecode(states: ModelState[]): DecodeSession {
    for (const s of states) this.checkDecodeState(s);
    return new SequentialDecode(this, [...states]);
  }

  protected checkDecodeState(state: ModelState): void {
    checkState(state, this.config);
  }
}

/** The single-sequence functions an engine can be built from (test doubles, small adapters). */
export interface SingleSequenceParts {
  name: string;
  config: MambaConfig;
  prefill(ids: ArrayLike<number>, options?: PrefillOptions): Promise<PrefillResult>;
  step(token: number, state: ModelState): Promise<StepResult>;
}

/** A MambaEngine from single-sequence prefill and step; their states are theirs to check. */
export function sequentialEngine(parts: SingleSequenceParts): MambaEngine {
  return new (class extends SequentialEngine {
    readonly name = parts.name;
    readonly config = parts.config;
    protected prefillOne(ids: ArrayLike<number>, options: PrefillOptions) {
      return parts.prefill(ids, options);
    }
    async stepOne(token: number, state: ModelState): Promise<SequenceStep> {
      return parts.step(token, state);
    }
    protected override checkDecodeState(): void {}
  })();
}

class SequentialDecode implements DecodeSession {
  constructor(
    private readonly engine: SequentialEngine,
    private readonly states: ModelState[],
  ) {}

  get batch(): number {
    return this.states.length;
  }

  async step(tokens: ArrayLike<number>, want: DecodeWant = { logits: true }): Promise<DecodeOutput> {
    const { vocabSize } = this.engine.config;
    checkStepTokens(tokens, this.batch, vocabSize);
    // A batch of one returns its step's own logits array (no copy).
    const rows: Array<Float32Array | null> = new Array(this.batch).fill(null);
    const greedy = want.argmax ? new Int32Array(this.batch) : null;
    for (let b = 0; b < this.batch; b++) {
      if (tokens[b] === -1) continue; // finished
      const r = await this.engine.stepOne(tokens[b]!, this.states[b]!, want.logits === true);
      this.states[b] = r.state;
      rows[b] = r.logits;
      if (greedy) greedy[b] = r.token ?? argmax(r.logits!);
    }
    let logits: Float32Array | undefined;
    if (want.logits && this.batch === 1 && rows[0]) logits = rows[0];
    else if (want.logits) {
      logits = new Float32Array(this.batch * vocabSize);
      rows.forEach((row, b) => {
        if (row) logits!.set(row, b * vocabSize);
      });
    }
    return { ...(logits ? { logits } : {}), ...(greedy ? { tokens: greedy } : {}) };
  }

  state(b: number): ModelState {
    return this.states[b]!;
  }

  dispose(): void {}
}
