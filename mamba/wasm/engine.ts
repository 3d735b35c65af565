// The WASM SIMD engine (#16): mamba/wasm/assembly compiled to one small module, instantiated per engine, with the
// weights copied into its memory once (fp32, or int8 with one scale per row for the big matmuls and the head, held as
// i16). Prefill (DeciMamba included) and the decode step run the same Mamba block in WASM; only token ids, the kept
// rows of a decimating layer and the logits asked for cross the JS↔WASM boundary. The recurrent state stays in WASM
// memory.
//
// State semantics: prefill() and step() return a state handle for the state now held in WASM memory. Stepping from
// that handle costs nothing; stepping from any other ModelState (a saved one, another engine's) copies it in. Reading
// conv/ssm of a handle copies them out, which works until that handle has been stepped from in a decode session or by
// stepGreedy (the memory has moved on; generate() walks forward and never looks back). step(), the contract's single
// step that leaves its input as it was, reads a resident input out first.
//
// prefill: layer by layer over the whole prompt (plain prompts in segments of SEGMENT tokens, the state carried
// between them), BLOCK tokens per matmul; a decimating layer first scores every row (‖Δ‖₂), then
// mamba/decimation.ts's keptRows() chooses, then the layer runs on and keeps only those rows.
import { composeIndices, decimationSlot, identityIndices, keptRows } from '../decimation.ts';
import {
  EngineInputError,
  type KeptIndices,
  type LayerState,
  type MambaConfig,
  type MambaWeights,
  type ModelState,
  type PrefillOptions,
  type PrefillResult,
  type StepResult,
  type Tensor,
} from '../engine.ts';
import { SequentialEngine, type SequenceStep } from '../engine-base.ts';
import { transpose2d } from '../weights.ts';
import { checkState, checkToken, validateRequest } from '../engine-input.ts';

export type StepPrecision = 'fp32' | 'int8';

interface WasmExports {
  memory: WebAssembly.Memory;
  alloc(bytes: number): number;
  configure(...sizesPrecisionEpsAndPointers: number[]): void;
  reserve(rows: number): void;
  residPtr(): number;
  idsPtr(): number;
  scoresPtr(): number;
  logitsPtr(): number;
  embed(n: number): void;
  scoreLayer(layer: number, resid: number, rows: number, scores: number): void;
  runLayer(layer: number, resid: number, rows: number, keep: number, keepN: number): void;
  headRows(n: number): void;
  step(token: number, withHead: number): number;
  LAYER_SLOTS: WebAssembly.Global;
  BLOCK: WebAssembly.Global;
}

/** Longest run of a plain prompt's rows kept in WASM memory at once (DeciMamba needs the whole prompt per layer). */
const SEGMENT = 2048;

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
  convWT: 3,
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

export interface WasmEngineOptions {
  precision?: StepPrecision;
}

export class WasmEngine extends SequentialEngine {
  readonly name: string;
  private readonly x: WasmExports;
  private readonly block: number;
  private readonly stateBase: number;
  private readonly layerBytes: number;
  /** Rows the prompt buffers hold (assembly/index.ts reserve()). */
  private capacity = 0;
  /** The handle whose state WASM memory holds now (null: none of ours). */
  private resident: ModelState | null = null;

  private constructor(
    readonly config: MambaConfig,
    instance: WebAssembly.Instance,
    weights: MambaWeights,
    readonly precision: StepPrecision,
  ) {
    super();
    this.name = `wasm-simd-${precision}`;
    this.x = instance.exports as unknown as WasmExports;
    this.block = this.x.BLOCK.value as number;
    const { dInner, dConv, dState } = config;
    this.layerBytes = dInner * (dConv + dState) * 4;
    this.stateBase = this.load(weights);
  }

  static async create(
    module: WebAssembly.Module,
    config: MambaConfig,
    weights: MambaWeights,
    options: WasmEngineOptions = {},
  ): Promise<WasmEngine> {
    if (config.useProjBias) throw new Error('the WASM engine has no in_proj/out_proj bias (none of the checkpoints)');
    for (const [name, v] of [
      ['d_model', config.dModel],
      ['d_inner', config.dInner],
      ['d_state', config.dState],
    ] as const) {
      if (v % 4 !== 0) throw new Error(`the WASM engine needs ${name} % 4 == 0 (got ${v})`); // whole vectors
    }
    const instance = await WebAssembly.instantiate(module, {});
    return new WasmEngine(config, instance, weights, options.precision ?? 'fp32');
  }

  /** Copies weights into WASM memory and configures the kernel; returns where the layers' states begin. */
  private load(w: MambaWeights): number {
    const c = this.config;
    const x = this.x;
    // Grow the memory once to what the model needs: the allocator would otherwise double it (48 MiB for 25 MB).
    const quant = this.precision === 'int8';
    const bytes = (t: Tensor | null, quantized = false) =>
      t ? t.data.length * (quantized && quant ? 2.05 : 4) + 32 : 0;
    const perLayer = w.layers.map((l) =>
      (Object.entries(l) as [string, Tensor | null][]).reduce(
        (n, [name, t]) => n + bytes(t, ['inProj', 'xProj', 'outProj'].includes(name)),
        0,
      ),
    );
    const scratch =
      4 * this.block * (2 * c.dModel + 6 * c.dInner + c.vocabSize + 2 * c.dState + c.dtRank) +
      4 * (c.dConv + 1) * c.dInner +
      4096;
    const tied = w.lmHead.data === w.embedding.data;
    const embeddings = bytes(w.lmHead, true) + (tied ? 0 : bytes(w.embedding, true));
    const need = perLayer.reduce((a, b) => a + b, 0) + embeddings + this.layerBytes * c.nLayer;
    const missing = need + scratch + (1 << 16) - x.memory.buffer.byteLength;
    if (missing > 0) x.memory.grow(Math.ceil(missing / 65536));
    const put = (data: Float32Array | Int16Array | Int32Array | Uint32Array): number => {
      const ptr = x.alloc(data.byteLength);
      new Uint8Array(x.memory.buffer, ptr, data.byteLength).set(
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      );
      return ptr;
    };
    const matrix = (t: Float32Array, rows: number): [number, number] => {
      if (this.precision === 'fp32') return [put(t), 0];
      // Stored widened to i16 (twice int8's bytes, half fp32's): the matmul then feeds them straight to
      // i32x4.dot_i16x8_s instead of sign-extending every weight vector on every use.
      const { q, scales } = quantizeRows(t, rows);
      return [put(Int16Array.from(q)), put(scales)];
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
      // [dConv, dInner]: one vector holds four channels' tap k
      row('convWT', put(transpose2d({ shape: [c.dInner, c.dConv], data: l.convWeight.data }).data));
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
    const sizes = [c.dModel, c.nLayer, c.dInner, c.dState, c.dConv, c.dtRank, c.vocabSize] as const;
    x.configure(...sizes, int8, c.normEpsilon, tablePtr, embedding, embeddingScale, normF, head, headScale);
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

  /** The contract's single step leaves its input readable: a resident handle is copied out before the step. */
  override async step(token: number, state: ModelState): Promise<StepResult> {
    if (state === this.resident) for (const layer of state) void [layer.conv, layer.ssm]; // the getters keep copies
    return super.step(token, state);
  }

  /** Greedy decoding: only the next token id crosses back (ties go to the lowest id, as sampling.ts's argmax). */
  async stepGreedy(token: number, state: ModelState): Promise<{ token: number; state: ModelState }> {
    checkToken(token, this.config.vocabSize);
    this.checkDecodeState(state);
    const r = await this.stepOne(token, state, false);
    return { token: r.token!, state: r.state };
  }

  /** Room for a prompt segment of `rows` tokens, the memory grown by just that (the allocator would double it). */
  private reserve(rows: number): void {
    if (rows <= this.capacity) return;
    this.capacity = (rows + 1023) & ~1023; // as reserve() in assembly/index.ts rounds
    const bytes = this.capacity * (4 * this.config.dModel + 4 + 8) + 64;
    this.x.memory.grow(Math.ceil(bytes / 65536));
    this.x.reserve(rows);
  }

  protected async prefillOne(ids: ArrayLike<number>, options: PrefillOptions): Promise<PrefillResult> {
    const req = validateRequest(ids, options, this.config);
    const length = req.ids.length;
    const dec = req.decimation;
    const segment = dec ? length : Math.min(length, SEGMENT); // a decimating layer scores the whole prompt
    this.reserve(segment);
    this.enter(null);
    const x = this.x;
    const resid = x.residPtr();
    const logits: Float32Array[] = new Array(req.positions.length);
    const kept: KeptIndices[] = [];
    for (let start = 0; start < length; start += segment) {
      let rows = Math.min(segment, length - start);
      new Int32Array(x.memory.buffer, x.idsPtr(), rows).set(req.ids.subarray(start, start + rows));
      x.embed(rows);
      let positions: Int32Array = identityIndices(rows).map((t) => t + start);
      for (let layer = 0; layer < this.config.nLayer; layer++) {
        const s = decimationSlot(dec, layer);
        const chosen =
          s < 0
            ? null
            : keptRows(rows, req.protect, s, dec!, (contextLen) => {
                x.scoreLayer(layer, resid, rows, x.scoresPtr());
                return new Float64Array(x.memory.buffer, x.scoresPtr(), contextLen);
              });
        if (!chosen) {
          x.runLayer(layer, resid, rows, 0, 0);
          continue;
        }
        new Int32Array(x.memory.buffer, x.idsPtr(), chosen.length).set(chosen);
        x.runLayer(layer, resid, rows, x.idsPtr(), chosen.length);
        positions = composeIndices(positions, chosen);
        kept.push({ layer, indices: positions }); // only layers that dropped tokens, as the reference reports
        rows = chosen.length;
      }
      this.headAt(positions, [start, start + segment], req.positions, logits);
    }
    return { positions: req.positions, logits, state: this.handle(), kept };
  }

  /** Logits of the positions asked within [from, to) from the segment's surviving rows (at `rowPositions`). */
  private headAt(rowPositions: Int32Array, [from, to]: number[], asked: number[], out: Float32Array[]): void {
    const rowOf = new Map(Array.from(rowPositions, (p, row) => [p, row] as const));
    const todo: Array<[slot: number, row: number]> = [];
    asked.forEach((p, i) => {
      if (p < from! || p >= to!) return; // another segment's
      const row = rowOf.get(p);
      if (row === undefined) {
        throw new EngineInputError(
          `prefill: logits requested at position ${p}, which decimation dropped (raise protect to cover it)`,
        );
      }
      todo.push([i, row]);
    });
    const { vocabSize } = this.config;
    for (let b = 0; b < todo.length; b += this.block) {
      const batch = todo.slice(b, b + this.block);
      new Int32Array(this.x.memory.buffer, this.x.idsPtr(), batch.length).set(batch.map(([, row]) => row));
      this.x.headRows(batch.length);
      const all = new Float32Array(this.x.memory.buffer, this.x.logitsPtr(), batch.length * vocabSize);
      batch.forEach(([i], j) => {
        out[i] = all.slice(j * vocabSize, (j + 1) * vocabSize);
      });
    }
  }

  /** Drops the resident state (the module's memory goes with the engine). */
  override async dispose(): Promise<void> {
    this.resident = null;
  }
}
