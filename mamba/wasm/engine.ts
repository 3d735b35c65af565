// The WASM SIMD decode engine (#16): mamba/wasm/assembly compiled to one small module, instantiated per engine, with
// the weights copied into its memory once (fp32, or int8 with one scale per row for the big matmuls and the head).
// A step crosses the JS↔WASM boundary with a token id in and, for greedy decoding, a token id out; the recurrent state
// stays in WASM memory between steps.
//
// State semantics: step() returns a state handle for the state now held in WASM memory. Stepping from that handle
// costs nothing; stepping from any other ModelState (an ONNX prefill's, a saved one) copies it in. Reading conv/ssm of
// a handle copies them out, which works until that handle has been stepped from again (the memory has moved on);
// callers that keep old states around (none in this codebase: generate() walks forward) must read them first.
//
// prefill: a given prefill engine (the edge's ONNX session: batched matmuls, decimation) or, without one, the prompt
// run token by token through the step (plain Mamba only; the logit head runs only at the positions asked for).
import {
  EngineInputError,
  type LayerState,
  type MambaConfig,
  type MambaEngine,
  type MambaWeights,
  type ModelState,
  type PrefillOptions,
  type PrefillResult,
  type Tensor,
} from '../engine.ts';
import { SequentialEngine, type SequenceStep } from '../engine-base.ts';
import { checkState, checkToken, validateRequest } from '../engine-input.ts';

export type StepPrecision = 'fp32' | 'int8';

interface StepExports {
  memory: WebAssembly.Memory;
  alloc(bytes: number): number;
  configure(dims: number, eps: number, ptrs: number): void;
  logitsPtr(): number;
  step(token: number, withHead: number): number;
  LAYER_SLOTS: WebAssembly.Global;
}

/** int8, symmetric, one scale per row (absmax / 127). */
export function quantizeRows(w: Float32Array, rows: number): { q: Int8Array; scales: Float32Array } {
  const k = w.length / rows;
  const q = new Int8Array(w.length);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = 0;
    for (let i = r * k; i < (r + 1) * k; i++) m = Math.max(m, Math.abs(w[i]!));
    const s = m > 0 ? m / 127 : 1;
    scales[r] = s;
    for (let i = r * k; i < (r + 1) * k; i++) q[i] = Math.max(-127, Math.min(127, Math.round(w[i]! / s)));
  }
  return { q, scales };
}

const SLOT = {
  norm: 0,
  inProj: 1,
  inProjScale: 2,
  convW: 3,
  convB: 4,
  xProj: 5,
  xProjScale: 6,
  dtW: 7,
  dtB: 8,
  a: 9,
  d: 10,
  outProj: 11,
  outProjScale: 12,
  convState: 13,
  ssmState: 14,
} as const;

export interface WasmStepOptions {
  precision?: StepPrecision;
  /** Runs prefill (batched, with decimation); its state is copied into WASM memory at the first step. */
  prefillEngine?: MambaEngine;
}

export class WasmStepEngine extends SequentialEngine {
  readonly name: string;
  private readonly x: StepExports;
  private readonly stateBase: number;
  private readonly layerBytes: number;
  /** The handle whose state WASM memory holds now (null: none of ours). */
  private resident: ModelState | null = null;

  private constructor(
    readonly config: MambaConfig,
    instance: WebAssembly.Instance,
    weights: MambaWeights,
    readonly precision: StepPrecision,
    private readonly prefillEngine: MambaEngine | undefined,
  ) {
    super();
    this.name = `wasm-simd-${precision}${prefillEngine ? `+${prefillEngine.name}-prefill` : ''}`;
    this.x = instance.exports as unknown as StepExports;
    const { dInner, dConv, dState } = config;
    this.layerBytes = dInner * (dConv + dState) * 4;
    this.stateBase = this.load(weights);
  }

  static async create(
    module: WebAssembly.Module,
    config: MambaConfig,
    weights: MambaWeights,
    options: WasmStepOptions = {},
  ): Promise<WasmStepEngine> {
    if (config.useProjBias)
      throw new Error('the WASM step engine has no in_proj/out_proj bias (none of the checkpoints)');
    if (config.dState % 4 !== 0) throw new Error(`the WASM step engine needs d_state % 4 == 0 (got ${config.dState})`);
    const instance = await WebAssembly.instantiate(module, {});
    return new WasmStepEngine(config, instance, weights, options.precision ?? 'fp32', options.prefillEngine);
  }

  /** Copies weights into WASM memory and configures the kernel; returns where the layers' states begin. */
  private load(w: MambaWeights): number {
    const c = this.config;
    const x = this.x;
    // Grow the memory once to what the model needs: the allocator would otherwise double it (48 MiB for 25 MB).
    const quant = this.precision === 'int8';
    const bytes = (t: Tensor | null, quantized = false) =>
      t ? t.data.length * (quantized && quant ? 1.05 : 4) + 32 : 0;
    const perLayer = w.layers.map((l) =>
      (Object.entries(l) as [string, Tensor | null][]).reduce(
        (n, [name, t]) => n + bytes(t, ['inProj', 'xProj', 'outProj'].includes(name)),
        0,
      ),
    );
    const scratch = 4 * (4 * c.dModel + 6 * c.dInner + c.vocabSize + 2 * c.dState + c.dtRank) + 4096;
    const tied = w.lmHead.data === w.embedding.data;
    const embeddings = bytes(w.lmHead, true) + (tied ? 0 : bytes(w.embedding, true));
    const need = perLayer.reduce((a, b) => a + b, 0) + embeddings + this.layerBytes * c.nLayer;
    const missing = need + scratch + (1 << 16) - x.memory.buffer.byteLength;
    if (missing > 0) x.memory.grow(Math.ceil(missing / 65536));
    const put = (data: Float32Array | Int8Array | Int32Array | Uint32Array): number => {
      const ptr = x.alloc(data.byteLength);
      new Uint8Array(x.memory.buffer, ptr, data.byteLength).set(
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      );
      return ptr;
    };
    const matrix = (t: Float32Array, rows: number): [number, number] => {
      if (this.precision === 'fp32') return [put(t), 0];
      const { q, scales } = quantizeRows(t, rows);
      return [put(q), put(scales)];
    };
    // States first, contiguous, so a whole ModelState is one block.
    const stateBase = x.alloc(this.layerBytes * c.nLayer);
    const slots = x.LAYER_SLOTS.value as number;
    const table = new Uint32Array(c.nLayer * slots);
    w.layers.forEach((l, i) => {
      const row = (name: keyof typeof SLOT, ptr: number) => (table[i * slots + SLOT[name]] = ptr);
      row('norm', put(l.norm.data));
      const [inProj, inScale] = matrix(l.inProj.data, 2 * c.dInner);
      row('inProj', inProj);
      row('inProjScale', inScale);
      row('convW', put(l.convWeight.data));
      row('convB', l.convBias ? put(l.convBias.data) : 0);
      const [xProj, xScale] = matrix(l.xProj.data, c.dtRank + 2 * c.dState);
      row('xProj', xProj);
      row('xProjScale', xScale);
      row('dtW', put(l.dtProjWeight.data));
      row('dtB', put(l.dtProjBias.data));
      row('a', put(Float32Array.from(l.aLog.data, (v) => -Math.exp(v))));
      row('d', put(l.d.data));
      const [outProj, outScale] = matrix(l.outProj.data, c.dModel);
      row('outProj', outProj);
      row('outProjScale', outScale);
      row('convState', stateBase + i * this.layerBytes);
      row('ssmState', stateBase + i * this.layerBytes + c.dInner * c.dConv * 4);
    });
    const tablePtr = put(table);
    const [head, headScale] = matrix(w.lmHead.data, c.vocabSize);
    // Tied head: the embedding lookup reads the same (possibly int8) rows.
    const [embedding, embeddingScale] =
      w.lmHead.data === w.embedding.data ? [head, headScale] : matrix(w.embedding.data, c.vocabSize);
    const normF = put(w.normF.data);
    const int8 = this.precision === 'int8' ? 1 : 0;
    const dims = put(Int32Array.of(c.dModel, c.nLayer, c.dInner, c.dState, c.dConv, c.dtRank, c.vocabSize, int8));
    const ptrs = put(Uint32Array.of(tablePtr, embedding, embeddingScale, normF, head, headScale));
    x.configure(dims, c.normEpsilon, ptrs);
    return stateBase;
  }

  /** Bytes of WASM memory this engine holds (weights, state, scratch). */
  get memoryBytes(): number {
    return this.x.memory.buffer.byteLength;
  }

  /** Makes `state` the one in WASM memory (a no-op for the resident handle). */
  private enter(state: ModelState | null): void {
    if (state !== null && state === this.resident) return;
    const { nLayer, dInner, dConv } = this.config;
    const mem = new Float32Array(this.x.memory.buffer, this.stateBase, (nLayer * this.layerBytes) / 4);
    if (state === null) {
      mem.fill(0);
    } else {
      checkState(state, this.config);
      const stride = this.layerBytes / 4;
      state.forEach((s, l) => {
        mem.set(s.conv, l * stride);
        mem.set(s.ssm, l * stride + dInner * dConv);
      });
    }
    this.resident = null;
  }

  /** The resident handle is checked by construction; reading it here would copy the whole state out. */
  protected override checkDecodeState(state: ModelState): void {
    if (state !== this.resident) checkState(state, this.config);
  }

  /** A handle on the state now in WASM memory; reading it copies the arrays out while it is still resident. */
  private handle(): ModelState {
    const { nLayer, dInner, dConv, dState } = this.config;
    const stride = this.layerBytes / 4;
    const state: ModelState = [];
    const read = (l: number, offset: number, length: number): Float32Array => {
      if (this.resident !== state)
        throw new Error('this WASM engine state was stepped from since; read conv/ssm before stepping on');
      const at = this.stateBase / 4 + l * stride + offset;
      return new Float32Array(this.x.memory.buffer).slice(at, at + length);
    };
    for (let l = 0; l < nLayer; l++) {
      let conv: Float32Array | null = null;
      let ssm: Float32Array | null = null;
      const layer: LayerState = {
        get conv() {
          conv ??= read(l, 0, dInner * dConv);
          return conv;
        },
        get ssm() {
          ssm ??= read(l, dInner * dConv, dInner * dState);
          return ssm;
        },
      };
      state.push(layer);
    }
    this.resident = state;
    return state;
  }

  private logits(): Float32Array {
    return new Float32Array(this.x.memory.buffer, this.x.logitsPtr(), this.config.vocabSize).slice();
  }

  /** One step (the session has checked the token and the state); the input handle is stale afterwards. */
  async stepOne(token: number, state: ModelState, wantLogits: boolean): Promise<SequenceStep> {
    this.enter(state);
    if (wantLogits) {
      this.x.step(token, 1);
      return { logits: this.logits(), state: this.handle() };
    }
    const next = this.x.step(token, 2); // the greedy token, computed in WASM: only an id crosses back
    return { logits: null, token: next, state: this.handle() };
  }

  /** Greedy decoding: only the next token id crosses back (ties go to the lowest id, as sampling.ts's argmax). */
  async stepGreedy(token: number, state: ModelState): Promise<{ token: number; state: ModelState }> {
    checkToken(token, this.config.vocabSize);
    this.checkDecodeState(state);
    const r = await this.stepOne(token, state, false);
    return { token: r.token!, state: r.state };
  }

  protected async prefillOne(ids: ArrayLike<number>, options: PrefillOptions): Promise<PrefillResult> {
    if (this.prefillEngine) return this.prefillEngine.prefill(ids, options);
    if (options.decimation)
      throw new EngineInputError('the WASM step engine prefills plain Mamba only (no decimation)');
    const { ids: checked, positions } = validateRequest(ids, options, this.config);
    const wanted = new Map<number, number[]>();
    positions.forEach((p, r) => {
      wanted.set(p, [...(wanted.get(p) ?? []), r]);
    });
    const logits: Float32Array[] = new Array(positions.length);
    this.enter(null);
    for (let t = 0; t < checked.length; t++) {
      const rows = wanted.get(t);
      this.x.step(checked[t]!, rows ? 1 : 0); // the head runs only where logits were asked for
      if (rows) {
        const l = this.logits();
        rows.forEach((r, j) => {
          logits[r] = j === 0 ? l : l.slice();
        });
      }
    }
    return { positions, logits, state: this.handle(), kept: [] };
  }

  /** Drops the resident state; the prefill engine belongs to the caller (the edge shares one per isolate). */
  override async dispose(): Promise<void> {
    this.resident = null;
  }
}
