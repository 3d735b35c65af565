// OnnxEngine: runs the exported graph in onnxruntime (web/WASM by default; any runtime with the onnxruntime-common
// API works, which the benchmark uses for onnxruntime-node). No Node or workerd specifics here: callers hand in the
// graph bytes and an initialised runtime.
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-common';
import { clampProtect, validateDecimation } from '../decimation.ts';
import type {
  KeptIndices,
  MambaConfig,
  MambaEngine,
  ModelState,
  PrefillOptions,
  PrefillResult,
  StepResult,
} from '../engine.ts';
import { EngineInputError } from '../engine.ts';
import { argmax } from '../sampling.ts';
import { planDecimation } from '../decimation.ts';
import type { OnnxManifest } from './manifest.ts';
import { knownPacked, packState, unpackedView } from './packed-state.ts';

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

export class OnnxEngine implements MambaEngine {
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
    const { nLayer, dInner, dConv, dState } = this.config;
    return Array.from({ length: nLayer }, () => ({
      conv: new Float32Array(dInner * dConv),
      ssm: new Float32Array(dInner * dState),
    }));
  }

  private i64(values: ArrayLike<number>, dims: number[]): OrtTensor {
    return new this.ort.Tensor('int64', BigInt64Array.from(Array.from(values, (v) => BigInt(v))), dims);
  }

  private checkIds(ids: ArrayLike<number>): void {
    const { vocabSize } = this.config;
    if (ids.length === 0) throw new EngineInputError('prefill needs at least one token');
    if (ids.length > this.manifest.maxSeqLen) {
      throw new EngineInputError(
        `prompt has ${ids.length} tokens, over the configured maximum of ${this.manifest.maxSeqLen} (maxSeqLen)`,
      );
    }
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i];
      if (!Number.isInteger(t) || t < 0 || t >= vocabSize)
        throw new EngineInputError(`token id ${t} at position ${i} is outside 0..${vocabSize - 1}`);
    }
  }

  private checkState(state: ModelState): void {
    const { nLayer, dInner, dConv, dState } = this.config;
    if (state.length !== nLayer) throw new EngineInputError(`state has ${state.length} layers, expected ${nLayer}`);
    state.forEach((s, i) => {
      if (s.conv.length !== dInner * dConv || s.ssm.length !== dInner * dState)
        throw new EngineInputError(`layer ${i} state has the wrong size`);
    });
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

  async prefill(ids: ArrayLike<number>, options: PrefillOptions = {}): Promise<PrefillResult> {
    this.checkIds(ids);
    const { nLayer, vocabSize } = this.config;
    const length = ids.length;
    const protect = clampProtect(options.protect ?? 1, length);
    const dec = options.decimation ?? null;
    if (dec) validateDecimation(dec, nLayer);
    for (const layer of dec?.layers ?? []) {
      if (!this.manifest.decimationLayers.includes(layer)) {
        throw new EngineInputError(
          `decimation at layer ${layer} was requested, but this export can only decimate at layers [${this.manifest.decimationLayers}] (re-export with --decimation)`,
        );
      }
    }
    const plan = planDecimation(length, protect, nLayer, dec);
    const positions = this.resolvePositions(options.logitPositions ?? 'last', length);
    const logits: Float32Array[] = new Array(positions.length);

    if (plan.reported.length > 0) {
      // Decimation sees the whole prompt at once (its scores rank every context token).
      const { out, state } = await this.run(ids, this.emptyState(), positions, protect, plan.keep);
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
      const result = await this.run(Array.prototype.slice.call(ids, start, end), state, local, protect, noKeep);
      state = result.state;
      const all = result.out.logits.data as Float32Array;
      rowsHere.forEach(([, r], j) => (logits[r] = all.slice(j * vocabSize, (j + 1) * vocabSize)));
    }
    return { positions, logits, state, kept: [] };
  }

  /** One lean-graph step; `withLogits` false fetches only the greedy token and the state. */
  private async runLean(session: InferenceSession, token: number, state: ModelState, withLogits: boolean) {
    this.checkIds([token]);
    let packed = knownPacked(state);
    if (!packed) {
      this.checkState(state);
      packed = packState(state, this.config);
    }
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
      next: Number((out.next_token.data as BigInt64Array)[0]),
      logits: withLogits ? (out.logits.data as Float32Array) : null,
      state: unpackedView(out.state_out.data as Float32Array, this.config),
    };
  }

  /**
   * Greedy decoding's step: the argmax is taken in the graph and only the token id and the packed state come back
   * (ties go to the lowest id, as mamba/sampling.ts's argmax). Falls back to step() + argmax without a lean graph.
   */
  async stepGreedy(token: number, state: ModelState): Promise<{ token: number; state: ModelState }> {
    if (this.stepSession) {
      const r = await this.runLean(this.stepSession, token, state, false);
      return { token: r.next, state: r.state };
    }
    const r = await this.step(token, state);
    return { token: argmax(r.logits), state: r.state };
  }

  async step(token: number, state: ModelState): Promise<StepResult> {
    if (this.stepSession) {
      const r = await this.runLean(this.stepSession, token, state, true);
      return { logits: r.logits!, state: r.state };
    }
    this.checkIds([token]);
    this.checkState(state);
    const { out, state: next } = await this.run([token], state, [0], 0, new Array<number>(this.config.nLayer).fill(-1));
    return { logits: (out.logits.data as Float32Array).slice(), state: next };
  }

  private resolvePositions(sel: 'last' | 'all' | number[], length: number): number[] {
    const positions = sel === 'last' ? [length - 1] : sel === 'all' ? Array.from({ length }, (_, i) => i) : [...sel];
    for (const p of positions) {
      if (!Number.isInteger(p) || p < 0 || p >= length)
        throw new EngineInputError(`prefill: logit position ${p} is outside [0, ${length})`);
    }
    return positions;
  }

  async dispose(): Promise<void> {
    await this.stepSession?.release();
    await this.session.release();
  }
}
