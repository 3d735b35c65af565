// Decoding: one token for each of `batch` sequences per step, states updated in place on the device. The step runs
// the prefill's layer loop (layers.ts) with one row per sequence and the one-step scan, then norm_f → lm_head → argmax.
// `fusedStep: true` runs a layer's step on the fused kernels (ops-step.ts: three launches a layer, up to 8 sequences)
// instead of six (mixer.ts); the engine picks it where the device check measured it faster (fusedStepByDefault).
// `persistentStep: true` runs the fused step's every layer in one launch (ops-step.ts stepLayers; measured slower,
// so off unless asked). Each layer asks L2 for the next layer's weights where they fit (`l2Prefetch`, l2PrefetchFits).
// After one eager warm-up step it is captured once as a CUDA graph and replayed, which removes the per-launch overhead
// that dominates small steps. A step that wants no logits (greedy decoding) can end in head_greedy instead (norm_f,
// lm_head and argmax in one launch, `greedyHead`), a second graph. Graph capture failing falls back to eager launches
// (the reason is kept in `graphError`).
// This is the CUDA engine's DecodeSession (mamba/engine.ts).
import {
  type DecodeOutput,
  type DecodeSession as EngineDecodeSession,
  type DecodeWant,
  GREEDY_AHEAD,
  type ModelState,
} from '../engine.ts';
import { checkStepTokens } from '../engine-input.ts';
import type { DevicePtr } from './bindings/driver.ts';
import { actBytes, layerStates, stateWords, type EngineCore } from './core.ts';
import { blockBuffers, enqueueHead, enqueueLayers } from './layers.ts';
import { Layout } from './layout.ts';
import { BLOCK_BUFFERS, blockBufferBytes, xDblWidth } from './memory-plan.ts';
import type { MixerScan, MmaStep } from './mixer.ts';
import type { L2Range } from './ops-args.ts';
import * as ops from './ops.ts';
import {
  fusedStepFits,
  greedyHeadFits,
  headGreedy,
  headGreedyBlocks,
  mmaStepFits,
  stepGemmFits,
  STEP_LAYER_BYTES,
  stepLayers,
  stepLayersBlocks,
  stepLayerTable,
  stepXBlocks,
} from './ops-step.ts';

const BUFFERS = [
  'tokens',
  'rowIdx',
  'argmax',
  'greedyRows',
  'residual',
  'residualAlt',
  'xPartial',
  'headPartial',
  'headArrival',
  'stepLayers',
  'stepBarrier',
  ...BLOCK_BUFFERS,
  'headNormed',
  'logits',
  'conv',
  'ssm',
] as const;
type DecodeBuffer = (typeof BUFFERS)[number];

/** How a step ends: norm_f → lm_head → argmax with the logits kept, or head_greedy's argmax alone. */
type StepHead = 'logits' | 'greedy';

/** How a decode session steps (CudaEngine.openDecode fills in the defaults it measured). */
export interface DecodeSessionOptions {
  useGraphs?: boolean;
  fusedStep?: boolean;
  programmatic?: boolean;
  greedyHead?: boolean;
  /** Every layer of a fused step in one launch with grid barriers between its stages (ops-step.ts stepLayers). */
  persistentStep?: boolean;
  /** Layers ask L2 for the weights and states ahead (CudaEngineOptions.l2Prefetch). */
  l2Prefetch?: boolean;
  /**
   * With l2Prefetch, the last layer also asks L2 for the head's first rows, as many as leave half of L2 to the layer
   * and the states (headPrefetchBytes): the head streams 77 MB at 130m while the last layer's launches wait on
   * latency, not bandwidth. Default false until the device check has measured it.
   */
  l2PrefetchHead?: boolean;
  ssmSeqs?: ops.SsmStepSeqs;
  /** Where the fused step does not run: in_proj and conv_step as one tensor-core launch (mixer.ts MmaStep; ops-step.ts mmaStepFits). */
  mmaStep?: MmaStep | false;
  /** Sequences a block of the mma step takes (kernels/step-mma.cu; default: the whole batch, one block a row block). */
  mmaSeqSpan?: number;
  /**
   * Where the fused step does not run: x_proj and out_proj on the tensor cores as programmatic dependents
   * (kernels/step-gemm.cu; bf16, d_inner ≤ 1536: ops-step.ts stepGemmFits) instead of cuBLAS. Default false until
   * the device check has measured it.
   */
  mmaGemms?: boolean;
}

/**
 * Whether what L2 holds for a step at once (the layer being read, the next one's weights and a layer's scan states of
 * every sequence) takes at most half of it, so the prefetched bytes are not evicted before they are read (130m: 15 MB
 * of the H100's 50; 1.4b's layers, ~52 MB each, do not fit and run without).
 */
export function l2PrefetchFits(a: { layerBytes: number; stateBytes: number; batch: number; l2Bytes: number }): boolean {
  return 2 * a.layerBytes + a.batch * a.stateBytes <= a.l2Bytes / 2;
}

/** What the last layer may ask L2 for of the head: the rest of half of L2 after the layer and the states, in 16s. */
export function headPrefetchBytes(a: {
  layerBytes: number;
  stateBytes: number;
  batch: number;
  l2Bytes: number;
  headBytes: number;
}): number {
  const room = a.l2Bytes / 2 - a.layerBytes - a.batch * a.stateBytes;
  return Math.max(0, Math.floor(Math.min(a.headBytes, room) / 16) * 16);
}

export class DecodeSession implements EngineDecodeSession {
  readonly batch: number;
  private readonly layout: Layout<DecodeBuffer>;
  private readonly base: DevicePtr;
  private readonly graphs = new Map<StepHead, bigint>();
  /** Steps run per head: a head's first runs eagerly, its second is captured. */
  private readonly runs = new Map<StepHead, number>();
  private lastHead: StepHead = 'logits';
  graphError: string | null = null;
  private disposed = false;

  /** Whether the step runs the fused kernels (ops-step.ts). */
  readonly fused: boolean;
  /** Whether the fused step's layers run as one launch (step_layers), and on how many blocks. */
  readonly persistent: boolean;
  private readonly persistentBlocks: number;

  private readonly useGraphs: boolean;
  /** Whether the step's own kernels launch as programmatic dependents (ops-step.ts; ops.ts convStep, ssmStepDt). */
  readonly programmatic: boolean;

  /** Sequences a thread of the unfused step's ssm_step_dt steps (ops.ts ssmStepDt). */
  readonly ssmSeqs: ops.SsmStepSeqs;
  /** Whether the unfused step runs in_proj and conv_step as one tensor-core launch, and how x_proj follows (mixer.ts). */
  readonly mma: MmaStep | null;
  /** Sequences a block of the mma step takes. */
  readonly mmaSeqSpan: number;
  /** Whether the unfused step's x_proj and out_proj run as step_gemm_mma. */
  readonly mmaGemms: boolean;

  /** Whether each layer asks L2 for the next one's weights (ops-args.ts L2Range; where l2PrefetchFits). */
  readonly l2Prefetch: boolean;
  /** Bytes of the head the last layer asks L2 for (0: none). */
  readonly headPrefetchBytes: number;

  /** Whether steps that want no logits end in head_greedy (ops-step.ts) rather than the logits and argmax_rows. */
  readonly greedyHead: boolean;
  private readonly headBlocks: number;

  constructor(
    private readonly core: EngineCore,
    batch: number,
    opts: DecodeSessionOptions = {},
  ) {
    const { useGraphs = true, fusedStep = false, programmatic = false, greedyHead = false, ssmSeqs = 1 } = opts;
    const { persistentStep = false, l2Prefetch = false } = opts;
    this.ssmSeqs = ssmSeqs;
    const layerBytes = Math.max(...core.weights.layers.map((l) => l.span.bytes));
    const stateBytes = core.config.dInner * core.config.dState * 4; // a sequence's scan state in one layer
    const l2Bytes = core.device.info.l2Bytes;
    this.l2Prefetch = l2Prefetch && l2PrefetchFits({ layerBytes, stateBytes, batch, l2Bytes });
    const headBytes = core.config.vocabSize * core.config.dModel * actBytes(core);
    this.headPrefetchBytes =
      this.l2Prefetch && opts.l2PrefetchHead
        ? headPrefetchBytes({ layerBytes, stateBytes, batch, l2Bytes, headBytes })
        : 0;
    this.useGraphs = useGraphs;
    if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`decode batch ${batch} must be a positive integer`);
    this.batch = batch;
    const { dModel, dInner, vocabSize } = core.config;
    this.fused = (fusedStep || persistentStep) && fusedStepFits(batch, core.config);
    const mma = opts.mmaStep ?? false;
    this.mma = mma && !this.fused && mmaStepFits(core.config, core.precision === 'bf16') ? mma : null;
    const span = opts.mmaSeqSpan ?? batch;
    if (!Number.isInteger(span) || span < 1) throw new RangeError(`mmaSeqSpan ${span} must be a positive integer`);
    this.mmaSeqSpan = Math.min(span, batch);
    this.mmaGemms = !!opts.mmaGemms && !this.fused && stepGemmFits(core.config.dInner, core.precision === 'bf16');
    const blocks = persistentStep && this.fused ? stepLayersBlocks(core.kernels, core.device.info, core.config) : 0;
    this.persistent = blocks > 0;
    this.persistentBlocks = blocks;
    this.programmatic = programmatic;
    const act = actBytes(core);
    this.greedyHead = greedyHead && greedyHeadFits(batch, dModel, act);
    this.headBlocks = headGreedyBlocks(vocabSize, core.device.info.multiprocessors);
    const words = stateWords(core.config);
    const sizes: Record<DecodeBuffer, number> = {
      tokens: batch * 4,
      rowIdx: batch * 4,
      argmax: batch * 4,
      greedyRows: GREEDY_AHEAD * batch * 4,
      residual: batch * dModel * 4,
      residualAlt: batch * dModel * 4,
      xPartial: stepXBlocks(dInner) * batch * xDblWidth(core.config) * 4,
      headPartial: 2 * this.headBlocks * batch * 4,
      headArrival: 4,
      stepLayers: this.persistent ? core.config.nLayer * STEP_LAYER_BYTES : 0,
      stepBarrier: 4,
      ...blockBufferBytes(core.config, core.precision, batch),
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
    core.device.fill32(this.buf('headArrival'), 0, 1);
    core.device.fill32(this.buf('stepBarrier'), 0, 1);
    if (this.persistent) core.device.upload(this.buf('stepLayers'), stepLayerTable(core.weights.layers));
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
    this.uploadTokens(tokens);
    const device = this.core.device;
    const { vocabSize } = this.core.config;
    this.run(!want.logits && this.greedyHead ? 'greedy' : 'logits');
    const out: DecodeOutput = {};
    if (want.argmax) out.tokens = device.download(new Int32Array(this.batch), this.buf('argmax'));
    if (want.logits) out.logits = device.download(new Float32Array(this.batch * vocabSize), this.buf('logits'));
    if (!want.argmax && !want.logits) device.synchronize();
    return out;
  }

  /**
   * Replays the last step's captured graph n times back to back on the inputs already uploaded, then waits: the device
   * check's GPU-only time per step, without the host's upload, launch and download between steps.
   */
  replay(n: number): void {
    const graph = this.graphs.get(this.lastHead);
    if (graph === undefined) throw new Error('replay needs a captured step (two steps taken with graphs on)');
    const device = this.core.device;
    for (let i = 0; i < n; i++) device.driver.launchGraph(graph, device.stream);
    device.synchronize();
  }

  /**
   * n greedy steps with no host round trip between them: the step (its graph once captured) ends by copying its
   * argmax into the next step's input, so the host only queues n launches and one copy of each step's argmax, then
   * reads the n rows back once. Steps of finished sequences (−1) run on token 0, as in step().
   */
  async stepGreedy(tokens: ArrayLike<number>, n: number): Promise<Int32Array> {
    if (!Number.isInteger(n) || n < 1 || n > GREEDY_AHEAD)
      throw new RangeError(`stepGreedy takes 1..${GREEDY_AHEAD} steps, got ${n}`);
    this.uploadTokens(tokens);
    const device = this.core.device;
    const rowBytes = this.batch * 4;
    for (let i = 0; i < n; i++) {
      this.run(this.greedyHead ? 'greedy' : 'logits');
      device.copy(this.buf('greedyRows') + i * rowBytes, this.buf('argmax'), rowBytes);
    }
    return device.download(new Int32Array(n * this.batch), this.buf('greedyRows'));
  }

  /** A step's input, checked (a finished sequence, −1, steps on token 0). */
  private uploadTokens(tokens: ArrayLike<number>): void {
    if (this.disposed) throw new Error('decode session is disposed');
    checkStepTokens(tokens, this.batch, this.core.config.vocabSize);
    this.core.device.upload(
      this.buf('tokens'),
      Int32Array.from(tokens, (t) => Math.max(t, 0)),
    );
  }

  get usesGraph(): boolean {
    return this.graphs.size > 0;
  }

  private run(head: StepHead): void {
    const device = this.core.device;
    const runs = (this.runs.get(head) ?? 0) + 1;
    this.runs.set(head, runs);
    this.lastHead = head;
    const captured = this.graphs.get(head);
    if (captured !== undefined) {
      device.driver.launchGraph(captured, device.stream);
      return;
    }
    // with the profiler on, a graph session marks its launches inside the graph (profiler.ts read()); the eager first
    // step's marks create the events, so none is created during the capture
    const profiler = this.useGraphs ? device.profiler : null;
    // the first step runs eagerly (cuBLAS and module warm-up happen outside any capture); the second is captured
    if (!this.useGraphs || this.graphError !== null || runs === 1) {
      profiler?.begin();
      this.enqueue(head);
      return;
    }
    let graph: bigint | null = null;
    try {
      device.driver.beginCapture(device.stream);
      try {
        profiler?.begin(true);
        this.enqueue(head);
      } finally {
        graph = device.driver.endCaptureAndInstantiate(device.stream);
      }
      device.driver.launchGraph(graph, device.stream);
      this.graphs.set(head, graph);
    } catch (err) {
      this.graphError = (err as Error).message;
      if (graph !== null) device.driver.destroyGraphExec(graph);
      this.enqueue(head);
    }
  }

  /** The step's kernels, in order (also what the graph captures): the layer loop with one row per sequence. */
  private enqueue(head: StepHead): void {
    const core = this.core;
    const B = this.batch;
    const b = (n: DecodeBuffer) => this.buf(n);
    // the fused norm reads the residual stream from one buffer of the pair and writes the other, alternately
    const pair = (i: number) => (i % 2 === 0 ? [b('residual'), b('residualAlt')] : [b('residualAlt'), b('residual')]);
    const { programmatic, ssmSeqs, mma, mmaSeqSpan, mmaGemms } = this;
    const scratch = { partial: b('xPartial'), programmatic, ssmSeqs, mma, mmaSeqSpan, mmaGemms };
    const embed = { ids: b('tokens'), table: core.weights.embedding };
    // layer i asks L2 for layer i + 1's weights
    const layers = core.weights.layers;
    const weightsAhead = (i: number): L2Range | null => {
      const next = layers[i + 1]?.span;
      if (!next && this.headPrefetchBytes > 0)
        return { ptr: core.weights.lmHead, bytes: this.headPrefetchBytes, stride: 0, count: 1 };
      return this.l2Prefetch && next ? { ...next, stride: 0, count: 1 } : null;
    };
    const stepOf = (i: number): MixerScan => {
      const prefetch = weightsAhead(i);
      if (!this.fused) return { kind: 'step', scratch, fused: null, prefetch };
      const [residualIn, residualOut] = pair(i);
      return {
        kind: 'step',
        scratch,
        fused: { norm: { hidden: b('hidden'), residualIn, residualOut, embed: i === 0 ? embed : null } },
        prefetch,
      };
    };
    if (this.persistent) this.enqueuePersistent();
    else
      enqueueLayers(core, {
        ids: b('tokens'),
        rows: B,
        nSeq: B,
        buffers: { ...blockBuffers(b), residual: b('residual'), residualAlt: null },
        states: { conv: b('conv'), ssm: b('ssm'), initConv: null, initSsm: null },
        layer: (i) => ({ rowsIn: B, scan: stepOf(i) }),
      });
    const residual = this.fused ? pair(core.config.nLayer - 1)[1]! : b('residual');
    const [hidden, rowIdx, normed] = [b('hidden'), b('rowIdx'), b('headNormed')];
    if (head === 'greedy') {
      const { dModel, vocabSize, normEpsilon } = core.config;
      // its argmax is also written into tokens, the next step's input
      headGreedy(core.kernels, {
        hidden,
        residual,
        norm: core.weights.normF,
        eps: normEpsilon,
        weight: core.weights.lmHead,
        partial: b('headPartial'),
        arrival: b('headArrival'),
        out: b('argmax'),
        nextIds: b('tokens'),
        batch: B,
        dModel,
        vocab: vocabSize,
        blocks: this.headBlocks,
        programmatic: this.programmatic,
      });
      return;
    }
    enqueueHead(core, { hidden, residual, rowIdx, normed, logits: b('logits'), rows: B });
    ops.argmax(core.kernels, b('logits'), B, core.config.vocabSize, b('argmax'));
    // the next step's input, for stepGreedy (step() uploads its own tokens over it)
    core.device.copy(b('tokens'), b('argmax'), B * 4);
  }

  /** The fused step's layers as one launch (step_layers): the same stages, buffers and residual pair as stepOf's. */
  private enqueuePersistent(): void {
    const core = this.core;
    const b = (n: DecodeBuffer) => this.buf(n);
    const { nLayer, dModel, dInner, dtRank, normEpsilon } = core.config;
    const words = stateWords(core.config);
    stepLayers(core.kernels, {
      table: b('stepLayers'),
      nLayer,
      ids: b('tokens'),
      embedding: core.weights.embedding,
      eps: normEpsilon,
      hidden: b('hidden'),
      residual: [b('residual'), b('residualAlt')],
      xz: b('xz'),
      x: b('x'),
      partial: b('xPartial'),
      y: b('y'),
      conv: { ptr: b('conv'), seqStride: words.conv },
      ssm: { ptr: b('ssm'), seqStride: words.ssm },
      barrier: b('stepBarrier'),
      batch: this.batch,
      dModel,
      dInner,
      dtRank,
      blocks: this.persistentBlocks,
      l2Prefetch: this.l2Prefetch,
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const device = this.core.device;
    device.synchronize();
    for (const graph of this.graphs.values()) device.driver.destroyGraphExec(graph);
    this.graphs.clear();
    device.free(this.base);
  }
}
