// OnnxEngine: runs the exported prefill/step graphs in onnxruntime (web/WASM by default; any runtime with the
// onnxruntime-common API works, which the benchmark uses for onnxruntime-node). No Node or workerd specifics here:
// callers hand in the graph bytes and an initialised runtime.
import type { InferenceSession, Tensor as OrtTensor } from 'onnxruntime-common';
import type {
  KeptIndices,
  MambaConfig,
  MambaEngine,
  ModelState,
  PrefillOptions,
  PrefillResult,
  StepResult,
} from '../engine.ts';
import { clampProtect, validateDecimation } from '../decimation.ts';
import { planDecimation } from './decimation-plan.ts';
import type { OnnxManifest } from './manifest.ts';

/** The slice of the onnxruntime-common API the engine uses (onnxruntime-web and onnxruntime-node both provide it). */
export interface OrtApi {
  InferenceSession: { create(model: Uint8Array, options?: InferenceSession.SessionOptions): Promise<InferenceSession> };
  Tensor: new (type: 'float32' | 'int64', data: Float32Array | BigInt64Array, dims: readonly number[]) => OrtTensor;
}

export interface OnnxModelBytes {
  manifest: OnnxManifest;
  prefill: Uint8Array;
  step: Uint8Array;
}

export interface OnnxEngineOptions {
  /** 'wasm' for onnxruntime-web, 'cpu' for onnxruntime-node. */
  executionProvider?: string;
  name?: string;
}

export class OnnxEngine implements MambaEngine {
  readonly name: string;
  readonly config: MambaConfig;

  private constructor(
    private readonly ort: OrtApi,
    readonly manifest: OnnxManifest,
    private readonly prefillSession: InferenceSession,
    private readonly stepSession: InferenceSession,
    name: string,
  ) {
    this.config = manifest.config;
    this.name = name;
  }

  static async create(ort: OrtApi, model: OnnxModelBytes, options: OnnxEngineOptions = {}): Promise<OnnxEngine> {
    const sessionOptions: InferenceSession.SessionOptions = {
      executionProviders: [options.executionProvider ?? 'wasm'],
      graphOptimizationLevel: 'all',
    };
    const prefill = await ort.InferenceSession.create(model.prefill, sessionOptions);
    const step = await ort.InferenceSession.create(model.step, sessionOptions);
    return new OnnxEngine(ort, model.manifest, prefill, step, options.name ?? `onnx-wasm-${model.manifest.quantization === 'none' ? 'fp32' : model.manifest.quantization}`);
  }

  private i64(values: ArrayLike<number>, dims: number[]): OrtTensor {
    return new this.ort.Tensor('int64', BigInt64Array.from(Array.from(values, (v) => BigInt(v))), dims);
  }

  private checkIds(ids: ArrayLike<number>): void {
    const { vocabSize } = this.config;
    if (ids.length === 0) throw new Error('prefill needs at least one token');
    if (ids.length > this.manifest.maxSeqLen) {
      throw new Error(`prompt has ${ids.length} tokens, over the configured maximum of ${this.manifest.maxSeqLen} (maxSeqLen)`);
    }
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i];
      if (!Number.isInteger(t) || t < 0 || t >= vocabSize) throw new Error(`token id ${t} at position ${i} is outside 0..${vocabSize - 1}`);
    }
  }

  async prefill(ids: ArrayLike<number>, options: PrefillOptions = {}): Promise<PrefillResult> {
    this.checkIds(ids);
    const { nLayer } = this.config;
    const length = ids.length;
    const protect = clampProtect(options.protect ?? 1, length);
    const dec = options.decimation ?? null;
    if (dec) validateDecimation(dec, nLayer);
    const plan = planDecimation(length, protect, nLayer, dec);
    for (const layer of dec?.layers ?? []) {
      if (!this.manifest.decimationLayers.includes(layer)) {
        throw new Error(`decimation at layer ${layer} was requested, but this export can only decimate at layers [${this.manifest.decimationLayers}] (re-export with --decimation)`);
      }
    }

    const positions = this.resolvePositions(options.logitPositions ?? 'last', length);

    const feeds: Record<string, OrtTensor> = {
      input_ids: this.i64(ids, [1, length]),
      protect: this.i64([protect], []),
      keep: this.i64(plan.keep, [nLayer]),
      logit_positions: this.i64(positions, [positions.length]),
    };
    const out = await this.prefillSession.run(feeds);
    const rows = out.logit_rows.data as BigInt64Array;
    positions.forEach((p, r) => {
      if (rows[r] < 0n) throw new Error(`prefill: logits requested at position ${p}, which decimation dropped (raise protect to cover it)`);
    });
    const { vocabSize } = this.config;
    const logitsAll = out.logits.data as Float32Array;
    const logits = positions.map((_, r) => logitsAll.slice(r * vocabSize, (r + 1) * vocabSize));
    const kept: KeptIndices[] = plan.reported.map((layer) => ({
      layer,
      indices: Int32Array.from(out[`kept.${layer}`].data as BigInt64Array, (v) => Number(v)),
    }));
    return { positions, logits, state: this.readState(out), kept };
  }

  async step(token: number, state: ModelState): Promise<StepResult> {
    this.checkIds([token]);
    const { nLayer, dInner, dConv, dState } = this.config;
    if (state.length !== nLayer) throw new Error(`state has ${state.length} layers, expected ${nLayer}`);
    const feeds: Record<string, OrtTensor> = { input_ids: this.i64([token], [1, 1]) };
    state.forEach((s, i) => {
      feeds[`conv_state_in.${i}`] = new this.ort.Tensor('float32', s.conv, [dInner, dConv]);
      feeds[`ssm_state_in.${i}`] = new this.ort.Tensor('float32', s.ssm, [dInner, dState]);
    });
    const out = await this.stepSession.run(feeds);
    return { logits: (out.logits.data as Float32Array).slice(), state: this.readState(out) };
  }

  private readState(out: InferenceSession.OnnxValueMapType): ModelState {
    return Array.from({ length: this.config.nLayer }, (_, i) => ({
      conv: out[`conv_state.${i}`].data as Float32Array,
      ssm: out[`ssm_state.${i}`].data as Float32Array,
    }));
  }

  private resolvePositions(sel: 'last' | 'all' | number[], length: number): number[] {
    const positions = sel === 'last' ? [length - 1] : sel === 'all' ? Array.from({ length }, (_, i) => i) : [...sel];
    for (const p of positions) {
      if (!Number.isInteger(p) || p < 0 || p >= length) throw new Error(`prefill: logit position ${p} is outside [0, ${length})`);
    }
    return positions;
  }

  async dispose(): Promise<void> {
    await this.prefillSession.release();
    await this.stepSession.release();
  }
}
