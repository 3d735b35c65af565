// OnnxEngine: runs the exported graph in onnxruntime (web/WASM by default; any runtime with the onnxruntime-common
// API works, which the benchmark uses for onnxruntime-node). No Node or workerd specifics here: callers hand in the
// graph bytes and an initialised runtime.
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-common';
import { clampProtect, planDecimation } from '../decimation.ts';
import type { KeptIndices, MambaConfig, ModelState, PrefillOptions, PrefillResult } from '../engine.ts';
import { EngineInputError } from '../engine.ts';
import { SequentialEngine, type SequenceStep } from '../engine-base.ts';
import { checkState, checkToken, emptyState, validateRequest } from '../engine-input.ts';
import { argmax } from '../sampling.ts';
import type { OnnxManifest } from './manifest.ts';
import { packState, unpackedView } from './packed-state.ts';

/** The slice of the onnxruntime-common API the engine uses (onnxruntime-web and onnxruntime-node both provide it). */
export interface OrtApi {
  InferenceSession: { create(model: Uint8Array, options?: InferenceSession.SessionOptions): Promise<InferenceSession> };
  Tensor: new (type: 'float32' | 'int64', data: Float32Array | BigInt64Array, dims: readonly number[]) => OrtTensor;
}

export interface OnnxModelBytes {
  manifest: OnnxManifest;
  model: Uint8Array;
  /** The lean step graph (manifest.stepFile), when the export has one. */
  step?: Uint8Array;
}

export interface OnnxEngineOptions {
  /** 'wasm' for onnxruntime-web, 'cpu' for onnxruntime-node. */
  executionProvider?: string;
  name?: string;
  /**
   * Prompts without decimation are prefilled in chunks of this many tokens, carrying the state, so activation
   * memory stays bounded whatever the prompt length (a Worker has 128 MB). Default 512.
   */
  prefillChunk?: number;
  /** Extra session options (e.g. intraOpNumThreads for onnxruntime-node). */
  sessionOptions?: InferenceSession.SessionOptions;
  /** Decode with the lean step graph when the export has one (default true); false uses the main graph's If. */
  leanStep?: boolean;
  /** Let ORT pre-pack the lean step graph's weights: faster decode, more memory (default false, for Workers). */
  stepPrepack?: boolean;
}

export class OnnxEngine extends SequentialEngine {
  readonly name: string;
  readonly config: MambaConfig;
  private readonly prefillChunk: number;

  private constructor(
    private readonly ort: OrtApi,
    readonly manifest: OnnxManifest,
    private readonly session: InferenceSession,
    private readonly stepSession: InferenceSession | null,
    options: OnnxEngineOptions,
  ) {
    super();
    this.config = manifest.config;
    const q = manifest.quantization === 'none' ? 'fp32' : manifest.quantization;
    this.name = options.name ?? `onnx-${options.executionProvider === 'cpu' ? 'native' : 'wasm'}-${q}`;
    this.prefillChunk = options.prefillChunk ?? 512;
  }

  static async create(ort: OrtApi, model: OnnxModelBytes, options: OnnxEngineOptions = {}): Promise<OnnxEngine> {
    const sessionOptions: InferenceSession.SessionOptions = {
      executionProviders: [options.executionProvider ?? 'wasm'],
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      // MLAS's pre-packed weight copies would double the weights' memory; measured no speed loss without them.
      extra: { session: { disable_prepacking: '1' } },
      ...options.sessionOptions,
    };
    // No memory pattern for the main graph: its planned block per input shape cost +20 MiB of heap at load and
    // 131 vs 84 MiB at a 1K DeciMamba prefill (188 vs 121 at 2K), at no measured speed (#16). The step keeps it.
    const mainOptions = { ...sessionOptions, enableMemPattern: false, ...options.sessionOptions };
    const session = await ort.InferenceSession.create(model.model, mainOptions);
    // Pre-packing spares the transposed-B GEMMs (the tied head) their per-call packing, for ~20 MiB more heap (fp32).
    const stepOptions = options.stepPrepack
      ? { ...sessionOptions, extra: { session: { disable_prepacking: '0' } } }
      : sessionOptions;
    const lean =
      options.leanStep !== false && model.step ? await ort.InferenceSession.create(model.step, stepOptions) : null;
    return new OnnxEngine(ort, model.manifest, session, lean, options);
  }

  /** Whether decoding runs the lean step graph. */
  get leanStep(): boolean {
    return this.stepSession !== null;
  }

  /** All-zero conv and ssm states: the state before the first token. */
  emptyState(): ModelState {
    return emptyState(this.config);
  }

  private i64(values: ArrayLike<number>, dims: number[]): OrtTensor {
    return new this.ort.Tensor('int64', BigInt64Array.from(Array.from(values, (v) => BigInt(v))), dims);
  }

  /** One run of the graph: `ids` continue from `state`; logits for `positions` (indices into `ids`). */
  private async run(ids: ArrayLike<number>, state: ModelState, positions: number[], protect: number, keep: number[]) {
    const { nLayer, dInner, dConv, dState } = this.config;
    const feeds: Record<string, OrtTensor> = {
      input_ids: this.i64(ids, [1, ids.length]),
      protect: this.i64([protect], []),
      keep: this.i64(keep, [nLayer]),
      logit_positions: this.i64(positions, [positions.length]),
    };
    state.forEach((s, i) => {
      feeds[`conv_state_in.${i}`] = new this.ort.Tensor('float32', s.conv, [dInner, dConv]);
      feeds[`ssm_state_in.${i}`] = new this.ort.Tensor('float32', s.ssm, [dInner, dState]);
    });
    const out = await this.session.run(feeds);
    const newState: ModelState = Array.from({ length: nLayer }, (_, i) => ({
      conv: out[`conv_state.${i}`].data as Float32Array,
      ssm: out[`ssm_state.${i}`].data as Float32Array,
    }));
    return { out, state: newState };
  }

  protected async prefillOne(ids: ArrayLike<number>, options: PrefillOptions): Promise<PrefillResult> {
    const req = validateRequest(ids, options, this.config);
    const { nLayer, vocabSize } = this.config;
    const length = req.ids.length;
    if (length > this.manifest.maxSeqLen) {
      throw new EngineInputError(
        `prompt has ${length} tokens, over the configured maximum of ${this.manifest.maxSeqLen} (maxSeqLen)`,
      );
    }
    const protect = clampProtect(req.protect, length);
    const dec = req.decimation;
    for (const layer of dec?.layers ?? []) {
      if (!this.manifest.decimationLayers.includes(layer)) {
        throw new EngineInputError(
          `decimation at layer ${layer} was requested, but this export can only decimate at layers [${this.manifest.decimationLayers}] (re-export with --decimation)`,
        );
      }
    }
    const plan = planDecimation(length, protect, nLayer, dec);
    const positions = req.positions;
    const logits: Float32Array[] = new Array(positions.length);

    if (plan.reported.length > 0) {
      // Decimation sees the whole prompt at once (its scores rank every context token).
      const { out, state } = await this.run(req.ids, this.emptyState(), positions, protect, plan.keep);
      const rows = out.logit_rows.data as BigInt64Array;
      const all = out.logits.data as Float32Array;
      positions.forEach((p, r) => {
        if (rows[r] < 0n)
          throw new EngineInputError(
            `prefill: logits requested at position ${p}, which decimation dropped (raise protect to cover it)`,
          );
        logits[r] = all.slice(r * vocabSize, (r + 1) * vocabSize);
      });
      const kept: KeptIndices[] = plan.reported.map((layer) => ({
        layer,
        indices: Int32Array.from(out[`kept.${layer}`].data as BigInt64Array, (v) => Number(v)),
      }));
      return { positions, logits, state, kept };
    }

    // No token is dropped: prefill chunk by chunk, carrying the state (bounded activation memory).
    let state = this.emptyState();
    const noKeep = new Array<number>(nLayer).fill(-1);
    for (let start = 0; start < length; start += this.prefillChunk) {
      const end = Math.min(length, start + this.prefillChunk);
      const rowsHere = positions.map((p, r) => [p, r] as const).filter(([p]) => p >= start && p < end);
      // A run always returns at least one row; ask for the chunk's last when no position falls in it.
      const local = rowsHere.length > 0 ? rowsHere.map(([p]) => p - start) : [end - start - 1];
      const result = await this.run(req.ids.subarray(start, end), state, local, protect, noKeep);
      state = result.state;
      const all = result.out.logits.data as Float32Array;
      rowsHere.forEach(([, r], j) => {
        logits[r] = all.slice(j * vocabSize, (j + 1) * vocabSize);
      });
    }
    return { positions, logits, state, kept: [] };
  }

  /** One lean-graph step; `withLogits` false fetches only the greedy token and the state. */
  private async runLean(session: InferenceSession, token: number, state: ModelState, withLogits: boolean) {
    const packed = packState(state, this.config);
    const { nLayer, dConv, dState, dInner } = this.config;
    const feeds = {
      token: this.i64([token], [1]),
      state: new this.ort.Tensor('float32', packed, [nLayer, dConv + dState, dInner]),
    };
    const out = await session.run(
      feeds,
      withLogits ? ['next_token', 'logits', 'state_out'] : ['next_token', 'state_out'],
    );
    return {
      token: Number((out.next_token.data as BigInt64Array)[0]),
      logits: withLogits ? (out.logits.data as Float32Array) : null,
      state: unpackedView(out.state_out.data as Float32Array, this.config),
    };
  }

  /**
   * Decoding's step. With the lean graph the argmax is taken in the graph (ties to the lowest id, as
   * mamba/sampling.ts's argmax), and without `wantLogits` only the token id and the packed state come back; without
   * it, the main graph's one-token path.
   */
  async stepOne(token: number, state: ModelState, wantLogits: boolean): Promise<SequenceStep> {
    if (this.stepSession) return this.runLean(this.stepSession, token, state, wantLogits);
    const noKeep = new Array<number>(this.config.nLayer).fill(-1);
    const { out, state: next } = await this.run([token], state, [0], 0, noKeep);
    return { logits: (out.logits.data as Float32Array).slice(), state: next };
  }

  /** One greedy step of one sequence (the lean graph's argmax when there is one). */
  async stepGreedy(token: number, state: ModelState): Promise<{ token: number; state: ModelState }> {
    checkState(state, this.config);
    checkToken(token, this.config.vocabSize);
    const r = await this.stepOne(token, state, false);
    return { token: r.token ?? argmax(r.logits!), state: r.state };
  }

  override async dispose(): Promise<void> {
    await this.stepSession?.release();
    await this.session.release();
  }
}
