// Decoding: one token for each of `batch` sequences per step, states updated in place on the device. The step's
// kernel sequence is the reference's forward for one token (embedding → blocks → norm_f → lm_head); after one eager
// warm-up step it is captured once as a CUDA graph and replayed, which removes the per-launch overhead that dominates
// small steps. Graph capture failing falls back to eager launches (the reason is kept in `graphError`).
// This is the CUDA engine's DecodeSession (mamba/engine.ts).
import type { DecodeOutput, DecodeSession as EngineDecodeSession, DecodeWant, ModelState } from '../engine.ts';
import { checkStepTokens } from '../engine-input.ts';
import type { DevicePtr } from './bindings/driver.ts';
import { actBytes, layerStates, stateWords, type EngineCore } from './core.ts';
import { Layout } from './layout.ts';
import { xDblWidth } from './memory-plan.ts';
import * as ops from './ops.ts';
import { bcOffsets, dtProj, inProj, lmHead, outProj, xProj } from './projections.ts';

const BUFFERS = [
  'tokens',
  'rowIdx',
  'argmax',
  'hidden',
  'residual',
  'normed',
  'xz',
  'x',
  'xDbl',
  'delta',
  'y',
  'headNormed',
  'logits',
  'conv',
  'ssm',
] as const;
type DecodeBuffer = (typeof BUFFERS)[number];

export class DecodeSession implements EngineDecodeSession {
  readonly batch: number;
  private readonly layout: Layout<DecodeBuffer>;
  private readonly base: DevicePtr;
  private graph: bigint | null = null;
  private steps = 0;
  graphError: string | null = null;
  private disposed = false;

  constructor(
    private readonly core: EngineCore,
    batch: number,
    private readonly useGraphs = true,
  ) {
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`decode batch ${batch} must be a positive integer`);
    this.batch = batch;
    const { dModel, dInner, vocabSize } = core.config;
    const act = actBytes(core);
    const words = stateWords(core.config);
    const sizes: Record<DecodeBuffer, number> = {
      tokens: batch * 4,
      rowIdx: batch * 4,
      argmax: batch * 4,
      hidden: batch * dModel * 4,
      residual: batch * dModel * 4,
      normed: batch * dModel * act,
      xz: batch * 2 * dInner * act,
      x: batch * dInner * act,
      xDbl: batch * xDblWidth(core.config) * act,
      delta: batch * dInner * 4,
      y: batch * dInner * act,
      headNormed: batch * dModel * act,
      logits: batch * vocabSize * 4,
      conv: batch * words.conv * 4,
      ssm: batch * words.ssm * 4,
    };
    this.layout = new Layout<DecodeBuffer>();
    for (const b of BUFFERS) this.layout.add(b, sizes[b]);
    this.base = core.device.alloc(this.layout.totalBytes);
    core.device.upload(
      this.buf('rowIdx'),
      Int32Array.from({ length: batch }, (_, i) => i),
    );
    core.device.fill32(this.buf('conv'), 0, batch * words.conv);
    core.device.fill32(this.buf('ssm'), 0, batch * words.ssm);
  }

  buf(name: DecodeBuffer): DevicePtr {
    return this.base + this.layout.get(name).offset;
  }

  /** Device address of sequence b's state: conv [nLayer, dInner, dConv] and ssm [nLayer, dInner, dState]. */
  stateOf(b: number): { conv: DevicePtr; ssm: DevicePtr } {
    const words = stateWords(this.core.config);
    return { conv: this.buf('conv') + b * words.conv * 4, ssm: this.buf('ssm') + b * words.ssm * 4 };
  }

  /** Sets sequence b's state from host arrays (the layout of PassSequenceOutput.conv/ssm). */
  setState(b: number, conv: Float32Array, ssm: Float32Array): void {
    const at = this.stateOf(b);
    this.core.device.upload(at.conv, conv);
    this.core.device.upload(at.ssm, ssm);
  }

  getState(b: number): { conv: Float32Array; ssm: Float32Array } {
    const words = stateWords(this.core.config);
    const at = this.stateOf(b);
    return {
      conv: this.core.device.download(new Float32Array(words.conv), at.conv),
      ssm: this.core.device.download(new Float32Array(words.ssm), at.ssm),
    };
  }

  /** Sequence b's state as a host ModelState (a copy). */
  state(b: number): ModelState {
    return layerStates(this.core.config, this.getState(b));
  }

  /** One token per sequence. */
  async step(tokens: ArrayLike<number>, want: DecodeWant = { logits: true }): Promise<DecodeOutput> {
    if (this.disposed) throw new Error('decode session is disposed');
    const { vocabSize } = this.core.config;
    checkStepTokens(tokens, this.batch, vocabSize);
    const device = this.core.device;
    device.upload(
      this.buf('tokens'),
      Int32Array.from(tokens, (t) => Math.max(t, 0)), // a finished sequence (−1) steps on token 0
    );
    this.run();
    const out: DecodeOutput = {};
    if (want.argmax) out.tokens = device.download(new Int32Array(this.batch), this.buf('argmax'));
    if (want.logits) out.logits = device.download(new Float32Array(this.batch * vocabSize), this.buf('logits'));
    if (!want.argmax && !want.logits) device.synchronize();
    return out;
  }

  get usesGraph(): boolean {
    return this.graph !== null;
  }

  private run(): void {
    const device = this.core.device;
    this.steps++;
    if (this.graph !== null) {
      device.driver.launchGraph(this.graph, device.stream);
      return;
    }
    // the first step runs eagerly (cuBLAS and module warm-up happen outside any capture); the second is captured
    if (!this.useGraphs || this.graphError !== null || this.steps === 1 || device.profiler) {
      this.enqueue();
      return;
    }
    try {
      device.driver.beginCapture(device.stream);
      try {
        this.enqueue();
      } finally {
        this.graph = device.driver.endCaptureAndInstantiate(device.stream);
      }
      device.driver.launchGraph(this.graph, device.stream);
    } catch (err) {
      this.graphError = (err as Error).message;
      if (this.graph !== null) device.driver.destroyGraphExec(this.graph);
      this.graph = null;
      this.enqueue();
    }
  }

  /** The step's kernels, in order (also what the graph captures). */
  private enqueue(): void {
    const core = this.core;
    const { kernels: k, config, weights } = core;
    const { dModel, dInner, dState, nLayer, vocabSize, normEpsilon } = config;
    const B = this.batch;
    const ab = actBytes(core);
    const dbl = xDblWidth(config);
    const bc = bcOffsets(core);
    const words = stateWords(config);
    const b = (n: DecodeBuffer) => this.buf(n);
    ops.embed(k, b('tokens'), weights.embedding, b('hidden'), B, dModel);
    for (let i = 0; i < nLayer; i++) {
      const layer = weights.layers[i]!;
      ops.addRmsNorm(k, {
        hidden: b('hidden'),
        residual: b('residual'),
        normed: b('normed'),
        weight: layer.norm,
        rows: B,
        dim: dModel,
        eps: normEpsilon,
        first: i === 0,
      });
      inProj(core, layer, b('normed'), b('xz'), B);
      ops.convStep(k, {
        x: { ptr: b('xz'), ld: 2 * dInner },
        state: { ptr: b('conv') + i * dInner * config.dConv * 4, seqStride: words.conv },
        weight: layer.convWeight,
        bias: layer.convBias,
        out: b('x'),
        batch: B,
        dInner,
      });
      xProj(core, layer, b('x'), b('xDbl'), B);
      dtProj(core, layer, b('xDbl'), b('delta'), B);
      ops.timeStep(k, b('delta'), layer.dtProjBias, B, dInner);
      ops.ssmStep(k, {
        x: b('x'),
        delta: b('delta'),
        z: { ptr: b('xz') + dInner * ab, ld: 2 * dInner },
        b: b('xDbl') + bc.b,
        c: b('xDbl') + bc.c,
        bcStride: dbl,
        aLog2: layer.aLog2,
        dSkip: layer.d,
        state: { ptr: b('ssm') + i * dInner * dState * 4, seqStride: words.ssm },
        y: b('y'),
        batch: B,
        dInner,
      });
      outProj(core, layer, b('y'), b('hidden'), B);
    }
    ops.finalNorm(k, {
      hidden: b('hidden'),
      residual: b('residual'),
      rowIdx: b('rowIdx'),
      out: b('headNormed'),
      weight: weights.normF,
      nOut: B,
      dim: dModel,
      eps: normEpsilon,
    });
    lmHead(core, b('headNormed'), b('logits'), B);
    ops.argmax(k, b('logits'), B, vocabSize, b('argmax'));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const device = this.core.device;
    device.synchronize();
    if (this.graph !== null) device.driver.destroyGraphExec(this.graph);
    this.graph = null;
    device.free(this.base);
  }
}
