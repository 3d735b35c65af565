// CudaEngine: Mamba-1 / DeciMamba on one NVIDIA GPU, driven from TypeScript (koffi → CUDA driver, cuBLAS, NVRTC).
// Implements MambaEngine: prefillBatchSettled() packs several prompts (each with its own DeciMamba settings) into as
// few passes as the memory plan allows, and openDecode() steps many sequences at once on the device.
import type { KeptIndices, MambaConfig, MambaWeights, ModelState, PrefillRequest, PrefillResult } from '../engine.ts';
import { EngineInputError } from '../engine.ts';
import { EngineBase } from '../engine-base.ts';
import { checkState, emptyState, validateRequest, type ValidRequest } from '../engine-input.ts';
import { DeviceArena } from './arena.ts';
import { planBatch, type BatchPlan } from './batch-plan.ts';
import type { EngineCore } from './core.ts';
import { layerStates, stateWords } from './core.ts';
import { DecodeSession, type DecodeSessionOptions } from './decode.ts';
import { CudaDevice, type CudaDeviceOptions } from './device.ts';
import { uploadWeights } from './device-weights.ts';
import {
  passLayout,
  passShape,
  forwardPass,
  type PassOptions,
  type PassSequenceInput,
  type PassSequenceOutput,
} from './forward.ts';
import { DEFAULT_SCAN, type Precision } from './memory-plan.ts';
import type { MmaStep, ScanKind } from './mixer.ts';
import { SCAN_STAGE_DEFAULT } from './kernels/manifest.ts';
import { DEFAULT_SCAN_CARRY, type ScanCarry } from './ops-scan.ts';
import { PrefillGraphCache } from './prefill-graphs.ts';
import { fusedStepByDefault, mmaStepByDefault } from './ops-step.ts';
import { ssmStepSeqsByDefault } from './ops.ts';
import { schedulePasses, type PassSegment } from './scheduler.ts';

export { EngineInputError };

export interface BatchRequest extends PrefillRequest {
  /** Return log-probabilities (log-softmax on the device) instead of raw logits. */
  logProbs?: boolean;
}

type CudaRequest = ValidRequest & { logProbs: boolean };

export class CudaMemoryError extends Error {
  override name = 'CudaMemoryError';
}

/** Prefill scan decays on the FMA pipe by default: 0 (H100, 130m bf16 32K: 4, 6 and 8 of 16 were 1–5% slower). */
export const DEFAULT_SCAN_FMA_EXP = 0;

export interface CudaEngineOptions {
  /** 'fp32' (parity; cuBLAS without TF32) or 'bf16' (bf16 GEMM operands and activations, f32 accumulation). */
  precision?: Precision;
  /** An open device to share between engines; otherwise one is opened (and closed by dispose()). */
  device?: CudaDevice;
  deviceOptions?: CudaDeviceOptions;
  /** Device memory left free for others (default max(1 GiB, 4% of the card)). */
  memoryReserveBytes?: number;
  /** Hard cap on one pass's arena (default: whatever is free). */
  memoryBudgetBytes?: number;
  /** Most prompt tokens in one pass (default unlimited: memory decides). */
  maxTokensPerPass?: number;
  /** Scan time-chunk length (default chosen from the device, batch-plan.ts). */
  scanChunk?: number;
  /** The chosen chunk fills the last wave of scan blocks (default true; false: the power-of-two base alone). */
  fitScanWaves?: boolean;
  /** Guard bytes between pass buffers, checked after each pass (tests and the device check). */
  guardBytes?: number;
  /** Capture decode steps as CUDA graphs (default true). */
  useGraphs?: boolean;
  /**
   * Decode steps of up to 8 sequences on the fused kernels (kernels/step-fused.cu), else six launches a layer (default:
   * where the device check measured the fused step faster, ops-step.ts fusedStepByDefault).
   */
  fusedStep?: boolean;
  /**
   * Where the fused step does not run, a decode step's in_proj and conv_step run as one tensor-core launch
   * (kernels/step-mma.cu; bf16, d_model ≤ 1024: ops-step.ts mmaStepFits), x_proj's partial sums in it too ('partials':
   * four launches a layer instead of six) or after it as the GEMM ('gemm': five). Default: 'partials' where the
   * device check measured it faster (ops-step.ts mmaStepByDefault), else false.
   */
  mmaStep?: MmaStep | false;
  /**
   * Greedy decode steps of up to 8 sequences end in one launch, head_greedy (norm_f, lm_head, argmax; no logits
   * written), instead of three (default false until the device check has measured it).
   */
  greedyHead?: boolean;
  /**
   * A fused decode step runs every layer in one launch, step_layers (kernels/step-layers.cu: grid barriers between the
   * stages instead of three launches a layer); default false: slower than the fused step (mamba/cuda/README.md, v13).
   */
  persistentStep?: boolean;
  /**
   * Each decode step layer asks L2 for the next layer's weights (the fused step's first launch, the unfused step's
   * ssm_step_dt), and the unfused conv_step for the scan's states (kernels/prelude.cuh l2_prefetch), each block after
   * its own loads, so the launches after it find them there. Default true where it fits (decode.ts l2PrefetchFits):
   * on the H100 it lifted the unfused step 3–8% (130m b8 13,316 → 14,279 tok/s, b64 79.4K → 82.1K) and left the fused
   * one within noise (b1 2,417 → 2,403, b8 10,551 → 10,601; cuda-device-check-decode-v15-h100.md).
   */
  l2Prefetch?: boolean;
  /**
   * Prefill's selective scan: 'split-staged' (default, memory-plan.ts DEFAULT_SCAN: split-softplus with its inputs
   * staged through shared memory by asynchronous copies, scan-staged.cu), 'split-softplus' (the three chunked kernels
   * of scan.cu, Δ formed in the first), 'split' (dt_softplus, then the same kernels), 'fused' (one kernel per layer,
   * scan-fused.cu) or 'fused-t2' (the same, two warps a channel); both fused kinds measured ~2× slower than split.
   */
  scan?: ScanKind;
  /**
   * How many of each prefill scan step's d_state decays run as a polynomial on the FMA pipe instead of the exp unit
   * (kernels/prelude.cuh scan_decay; 0..dState, default DEFAULT_SCAN_FMA_EXP).
   */
  scanFmaExp?: number;
  /**
   * Prefill: each block's out_proj adds into the residual stream (cuBLAS beta = 1) instead of writing `hidden` for the
   * next norm to add (layers.ts; default false: measured a draw, cuda-scan-staged.json: at 130m bf16 32K add_rmsnorm
   * 3.31 → 2.45 ms but out_proj 2.88 → 3.76 ms).
   */
  residualInOutProj?: boolean;
  /**
   * The split scans' pass 2: 'segmented' (default, DEFAULT_SCAN_CARRY: a warp a segment of the chunks, kernels/scan.cu
   * scan_carry_segmented) or 'serial' (a thread a (sequence, channel, state) walking every chunk).
   */
  scanCarry?: ScanCarry;
  /** scan 'split-staged': rows a stage and stages in the ring (scan-staged.cu; default SCAN_STAGE_DEFAULT, 8 × 3). */
  scanStage?: { steps: number; stages: number };
  /**
   * Run a prefill pass's blocks as a CUDA graph: captured the second time a pass shape is seen, replayed after
   * (prefill-graphs.ts; default false until measured).
   */
  prefillGraphs?: boolean;
}

type Collected = { logits: Map<number, Float32Array>; kept: KeptIndices[]; error?: string };

export interface PassReport {
  sequences: number;
  tokens: number;
  arenaBytes: number;
}

export class CudaEngine extends EngineBase<BatchRequest> {
  readonly name: string;
  override readonly packsBatches = true;
  private readonly arena: DeviceArena;
  /** The prefill graphs (null unless options.prefillGraphs). */
  readonly prefillGraphs: PrefillGraphCache | null;
  private disposed = false;
  /** The passes of the last prefillBatch (for benchmarks and logs). */
  lastPasses: PassReport[] = [];

  private constructor(
    readonly core: EngineCore,
    private readonly ownsDevice: boolean,
    private readonly options: CudaEngineOptions,
  ) {
    super();
    const fmaExp = core.kernels.build.scanFmaExp ?? DEFAULT_SCAN_FMA_EXP; // the build create() chose
    const variant = [
      options.scan && options.scan !== DEFAULT_SCAN ? options.scan : '',
      fmaExp !== DEFAULT_SCAN_FMA_EXP ? `fma${fmaExp}` : '',
      options.scanStage ? `stage${options.scanStage.steps}x${options.scanStage.stages}` : '',
      options.residualInOutProj ? 'resid' : '',
      options.scanCarry && options.scanCarry !== DEFAULT_SCAN_CARRY ? `${options.scanCarry}carry` : '',
      options.prefillGraphs ? 'graphs' : '',
    ];
    this.name = ['cuda', core.precision, ...variant.filter((v) => v)].join('-');
    this.arena = new DeviceArena(core.device);
    this.prefillGraphs = options.prefillGraphs ? new PrefillGraphCache(core.device) : null;
  }

  get config(): MambaConfig {
    return this.core.config;
  }

  static create(config: MambaConfig, weights: MambaWeights, options: CudaEngineOptions = {}): CudaEngine {
    if (weights.layers.length !== config.nLayer)
      throw new EngineInputError(`weights have ${weights.layers.length} layers, config says ${config.nLayer}`);
    const precision = options.precision ?? 'fp32';
    const device = options.device ?? CudaDevice.open(options.deviceOptions);
    try {
      const scanFmaExp = options.scanFmaExp ?? DEFAULT_SCAN_FMA_EXP;
      if (!Number.isInteger(scanFmaExp) || scanFmaExp < 0 || scanFmaExp > config.dState)
        throw new EngineInputError(`scanFmaExp must be an integer in 0..${config.dState} (got ${scanFmaExp})`);
      const { steps, stages } = options.scanStage ?? SCAN_STAGE_DEFAULT;
      if (![4, 8, 16].includes(steps) || !Number.isInteger(stages) || stages < 2 || stages > 4)
        throw new EngineInputError(`scanStage must be 4, 8 or 16 steps × 2..4 stages (got ${steps} × ${stages})`);
      // the output pass's ring is static shared memory (48 KB at most): ~1.6 KB a row in f32, ~1.1 KB in bf16
      const ringRows = precision === 'bf16' ? 32 : 24;
      if (steps * stages > ringRows)
        throw new EngineInputError(
          `scanStage: at most ${ringRows} rows in the ring in ${precision} (got ${steps} × ${stages})`,
        );
      const { dState, dConv } = config;
      const build = { actBf16: precision === 'bf16', dState, dConv, scanFmaExp, scanStage: options.scanStage };
      const kernels = device.kernels(build);
      const deviceWeights = uploadWeights(device, kernels, config, weights, precision);
      return new CudaEngine({ device, kernels, config, weights: deviceWeights, precision }, !options.device, options);
    } catch (err) {
      if (!options.device) device.dispose();
      throw err;
    }
  }

  static fromCheckpoint(
    checkpoint: { config: MambaConfig; weights: MambaWeights },
    options: CudaEngineOptions = {},
  ): CudaEngine {
    return CudaEngine.create(checkpoint.config, checkpoint.weights, options);
  }

  /** Several prompts at once; a bad or unrunnable request gets its Error in its slot, the others run. */
  async prefillBatchSettled(requests: BatchRequest[]): Promise<Array<PrefillResult | Error>> {
    return this.prefillBatchSettledSync(requests);
  }

  prefillBatchSettledSync(requests: BatchRequest[]): Array<PrefillResult | Error> {
    this.checkOpen();
    const results: Array<PrefillResult | Error | null> = requests.map(() => null);
    const valid: { index: number; req: CudaRequest }[] = [];
    requests.forEach((r, index) => {
      try {
        const req = validateRequest(r.ids, r.options ?? {}, this.core.config);
        valid.push({ index, req: { ...req, logProbs: r.logProbs ?? false } });
      } catch (err) {
        results[index] = err as Error;
      }
    });
    const budget = this.memoryBudget();
    const planFor = (items: PassSegment[]) =>
      planBatch(
        items.map((it) => ({
          length: it.length,
          protect: valid[it.request]!.req.protect,
          decimation: valid[it.request]!.req.decimation,
        })),
        this.core.config.nLayer,
      );
    const bytesFor = (items: PassSegment[]) => {
      const plan = planFor(items);
      const shape = passShape(
        this.core,
        plan,
        items.map((it) => ({
          logitPositions: this.positionsIn(valid[it.request]!.req, it),
          hasInitState: it.start > 0,
        })),
        this.passOptions(),
      );
      return passLayout(this.core, plan, shape, this.options.guardBytes).totalBytes;
    };
    const maxTokens = this.options.maxTokensPerPass ?? Infinity;
    const schedule = schedulePasses(
      valid.map((v) => ({ length: v.req.ids.length, decimating: v.req.decimation !== null })),
      (items) => items.reduce((n, it) => n + it.length, 0) <= maxTokens && bytesFor(items) <= budget,
      (items) => `needs ${gib(bytesFor(items))} GiB of device memory, ${gib(budget)} GiB is available`,
    );
    for (const [i, reason] of schedule.refused) results[valid[i]!.index] = new CudaMemoryError(`prefill: ${reason}`);

    // run the passes in order; segments of a long plain prompt carry their state to the next
    const carried = new Map<number, { conv: Float32Array; ssm: Float32Array }>();
    const collected = new Map<number, Collected>();
    this.lastPasses = [];
    for (const pass of schedule.passes) {
      const plan: BatchPlan = planFor(pass);
      const inputs: PassSequenceInput[] = pass.map((it) => {
        const req = valid[it.request]!.req;
        return {
          ids: req.ids.subarray(it.start, it.start + it.length),
          positionOffset: it.start,
          logitPositions: this.positionsIn(req, it),
          initState: it.start > 0 ? carried.get(it.request)! : null,
        };
      });
      const logProbs = pass.some((it) => valid[it.request]!.req.logProbs);
      if (logProbs && !pass.every((it) => valid[it.request]!.req.logProbs)) {
        // mixed outputs in one pass: run logits and log-probs requests as separate passes
        this.runSplitByOutput(pass, plan, inputs, valid, carried, collected);
        continue;
      }
      const outputs = forwardPass(this.core, this.arena, plan, inputs, { ...this.passOptions(), logProbs });
      this.lastPasses.push({ sequences: pass.length, tokens: plan.groups[0]!.rows, arenaBytes: this.arena.capacity });
      this.collect(pass, inputs, outputs, carried, collected);
    }

    valid.forEach(({ index, req }, i) => {
      if (results[index]) return;
      const got = collected.get(i);
      const state = carried.get(i);
      if (!got || !state) {
        results[index] = new Error('prefill: request was scheduled but produced no output');
        return;
      }
      if (got.error) {
        results[index] = new EngineInputError(got.error);
        return;
      }
      results[index] = {
        positions: req.positions,
        logits: req.positions.map((p) => got.logits.get(p)!),
        state: layerStates(this.core.config, state),
        kept: got.kept,
      };
    });
    return results as Array<PrefillResult | Error>;
  }

  private runSplitByOutput(
    pass: PassSegment[],
    plan: BatchPlan,
    inputs: PassSequenceInput[],
    valid: { index: number; req: CudaRequest }[],
    carried: Map<number, { conv: Float32Array; ssm: Float32Array }>,
    collected: Map<number, Collected>,
  ): void {
    for (const logProbs of [false, true]) {
      const idx = pass.map((_, j) => j).filter((j) => valid[pass[j]!.request]!.req.logProbs === logProbs);
      const sub = idx.map((j) => pass[j]!);
      const subPlan = planBatch(
        idx.map((j) => plan.sequences[j]!),
        this.core.config.nLayer,
      );
      const subInputs = idx.map((j) => inputs[j]!);
      const outputs = forwardPass(this.core, this.arena, subPlan, subInputs, { ...this.passOptions(), logProbs });
      this.lastPasses.push({ sequences: sub.length, tokens: subPlan.groups[0]!.rows, arenaBytes: this.arena.capacity });
      this.collect(sub, subInputs, outputs, carried, collected);
    }
  }

  private collect(
    pass: PassSegment[],
    inputs: PassSequenceInput[],
    outputs: PassSequenceOutput[],
    carried: Map<number, { conv: Float32Array; ssm: Float32Array }>,
    collected: Map<number, Collected>,
  ): void {
    pass.forEach((it, j) => {
      const out = outputs[j]!;
      const entry: Collected = collected.get(it.request) ?? { logits: new Map(), kept: [] };
      inputs[j]!.logitPositions.forEach((p, q) => {
        if (out.logits[q]) entry.logits.set(p, out.logits[q]!);
      });
      entry.kept.push(...out.kept);
      if (out.error) entry.error = out.error;
      collected.set(it.request, entry);
      carried.set(it.request, { conv: out.conv.slice(), ssm: out.ssm.slice() });
    });
  }

  /** A batched decoding session over `states` (one sequence each), on the device. */
  openDecode(states: ModelState[], opts: DecodeSessionOptions = {}): DecodeSession {
    this.checkOpen();
    for (const s of states) checkState(s, this.core.config);
    const useGraphs = opts.useGraphs ?? this.options.useGraphs ?? true;
    const fusedStep = opts.fusedStep ?? this.options.fusedStep ?? fusedStepByDefault(states.length, this.core.config);
    // programmatic dependent launch needs sm_90 (Hopper) or newer
    const programmatic = (opts.programmatic ?? true) && this.core.device.info.computeCapability[0] >= 9;
    const greedyHead = opts.greedyHead ?? this.options.greedyHead ?? false;
    const persistentStep = opts.persistentStep ?? this.options.persistentStep ?? false;
    const l2Prefetch = opts.l2Prefetch ?? this.options.l2Prefetch ?? true;
    const l2PrefetchHead = opts.l2PrefetchHead ?? false;
    const ssmSeqs = opts.ssmSeqs ?? ssmStepSeqsByDefault(states.length, this.core.config.dInner);
    const mmaStep =
      opts.mmaStep ??
      this.options.mmaStep ??
      mmaStepByDefault(states.length, this.core.config, this.core.precision === 'bf16');
    const session = new DecodeSession(this.core, states.length, {
      useGraphs,
      fusedStep,
      programmatic,
      greedyHead,
      persistentStep,
      l2Prefetch,
      l2PrefetchHead,
      ssmSeqs,
      mmaStep,
      mmaSeqSpan: opts.mmaSeqSpan,
      mmaGemms: opts.mmaGemms ?? false,
    });
    const { dInner, dConv, dState } = this.core.config;
    const words = stateWords(this.core.config);
    states.forEach((s, b) => {
      const conv = new Float32Array(words.conv);
      const ssm = new Float32Array(words.ssm);
      s.forEach((l, i) => {
        conv.set(l.conv, i * dInner * dConv);
        ssm.set(l.ssm, i * dInner * dState);
      });
      session.setState(b, conv, ssm);
    });
    return session;
  }

  /** All-zero conv and ssm states: the state before the first token. */
  emptyState(): ModelState {
    return emptyState(this.core.config);
  }

  /** Bytes the engine holds on the device (weights, arena, states, decode buffers). */
  get deviceBytes(): number {
    return this.core.device.allocatedBytes;
  }

  override async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const device = this.core.device;
    this.prefillGraphs?.dispose();
    this.arena.release();
    device.synchronize();
    device.free(this.core.weights.base);
    if (this.ownsDevice) device.dispose();
  }

  private passOptions(): PassOptions {
    return {
      scanChunk: this.options.scanChunk,
      fitScanWaves: this.options.fitScanWaves,
      guardBytes: this.options.guardBytes,
      scan: this.options.scan,
      residualInOutProj: this.options.residualInOutProj,
      scanCarry: this.options.scanCarry,
      graphs: this.prefillGraphs,
    };
  }

  private memoryBudget(): number {
    const { free, total } = this.core.device.memInfo();
    const reserve = this.options.memoryReserveBytes ?? Math.max(1 << 30, 0.04 * total);
    const available = free + this.arena.capacity - reserve;
    return Math.min(available, this.options.memoryBudgetBytes ?? Infinity);
  }

  private positionsIn(req: CudaRequest, item: PassSegment): number[] {
    return req.positions.filter((p) => p >= item.start && p < item.start + item.length);
  }

  private checkOpen(): void {
    if (this.disposed) throw new Error('CudaEngine is disposed');
  }
}

function gib(bytes: number): string {
  return (bytes / 2 ** 30).toFixed(2);
}
