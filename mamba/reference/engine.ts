// The reference Mamba-1 / DeciMamba engine: plain TypeScript, the oracle the ONNX and CUDA engines are checked against.
import { composeIndices, decimationSlot, deltaScores, identityIndices, keptRows } from '../decimation.ts';
import type {
  DecimationConfig,
  KeptIndices,
  MambaConfig,
  MambaWeights,
  ModelState,
  PrefillOptions,
  PrefillResult,
  StepResult,
} from '../engine.ts';
import { EngineInputError } from '../engine.ts';
import { SequentialEngine, type SequenceStep } from '../engine-base.ts';
import { checkState, checkToken, emptyState, validateRequest } from '../engine-input.ts';
import { mambaMixer, prepareLayer, type PreparedLayer, type RowChooser } from './mixer.ts';
import { add, gatherRows, rmsNorm } from './ops.ts';

export { EngineInputError };

interface ForwardResult {
  /** norm_f output for the surviving rows, [rows, dModel]. */
  final: Float32Array;
  /** Original position of each surviving row. */
  positions: Int32Array;
  state: ModelState;
  kept: KeptIndices[];
}

/** Per layer: the mixer's input (RMSNorm(residual), [rows, dModel]) and the original position of each row. */
export interface Trace {
  mixerInputs: Float32Array[];
  layerPositions: Int32Array[];
}

/**
 * Prefill and decode run the same forward (embedding → the one block loop → norm_f), over L tokens from a zero state
 * or over one token from a given state. It computes synchronously; prefillSync/stepSync are that, for tests and the
 * device check's oracle.
 */
export class ReferenceEngine extends SequentialEngine {
  readonly name = 'reference';
  private readonly layers: PreparedLayer[];

  constructor(
    readonly config: MambaConfig,
    private readonly weights: MambaWeights,
  ) {
    super();
    if (weights.layers.length !== config.nLayer) {
      throw new EngineInputError(`weights have ${weights.layers.length} layers, config says ${config.nLayer}`);
    }
    this.layers = weights.layers.map(prepareLayer);
  }

  static fromCheckpoint(checkpoint: { config: MambaConfig; weights: MambaWeights }): ReferenceEngine {
    return new ReferenceEngine(checkpoint.config, checkpoint.weights);
  }

  /** All-zero conv and ssm states: the state before the first token. */
  emptyState(): ModelState {
    return emptyState(this.config);
  }

  protected async prefillOne(ids: ArrayLike<number>, options: PrefillOptions): Promise<PrefillResult> {
    return this.runPrefill(ids, options);
  }

  async stepOne(token: number, state: ModelState): Promise<SequenceStep> {
    return this.stepForward(token, state);
  }

  prefillSync(ids: ArrayLike<number>, options: PrefillOptions = {}): PrefillResult {
    return this.runPrefill(ids, options);
  }

  /**
   * prefill that also returns each mixer's input (RMSNorm(residual), [rows_i, dModel]) and original positions, so tests
   * can replay single layers step by step.
   */
  prefillTrace(ids: ArrayLike<number>, options: PrefillOptions = {}): PrefillResult & Trace {
    const trace: Trace = { mixerInputs: [], layerPositions: [] };
    return { ...this.runPrefill(ids, options, trace), ...trace };
  }

  private runPrefill(ids: ArrayLike<number>, options: PrefillOptions, trace?: Trace): PrefillResult {
    const req = validateRequest(ids, options, this.config);
    const forward = this.forward(req.ids, this.emptyState(), req.decimation, req.protect, trace);
    const positions = req.positions;
    const rowOf = new Map(Array.from(forward.positions, (p, row) => [p, row] as const));
    const logits = positions.map((p) => {
      const row = rowOf.get(p);
      if (row === undefined) {
        throw new EngineInputError(
          `prefill: logits requested at position ${p}, which decimation dropped (raise protect to cover it)`,
        );
      }
      return this.logitsAt(forward.final, row);
    });
    return { positions, logits, state: forward.state, kept: forward.kept };
  }

  stepSync(token: number, state: ModelState): StepResult {
    checkState(state, this.config);
    checkToken(token, this.config.vocabSize);
    return this.stepForward(token, state);
  }

  private stepForward(token: number, state: ModelState): StepResult {
    const forward = this.forward([token], state, null, 0);
    return { logits: this.logitsAt(forward.final, 0), state: forward.state };
  }

  /** Embedding → blocks (residual add, RMSNorm, mixer, optional decimation) → norm_f. */
  private forward(
    ids: ArrayLike<number>,
    stateIn: ModelState,
    decimation: DecimationConfig | null,
    protect: number,
    trace?: Trace,
  ): ForwardResult {
    const { dModel, normEpsilon } = this.config;
    let rows = ids.length;
    let hidden = this.embed(ids);
    let residual: Float32Array | null = null;
    let positions = identityIndices(rows);
    const state: ModelState = [];
    const kept: KeptIndices[] = [];

    this.layers.forEach((layer, i) => {
      residual = residual ? add(hidden, residual) : hidden;
      const normed = rmsNorm(residual, rows, layer.weights.norm.data, normEpsilon);
      trace?.mixerInputs.push(normed);
      trace?.layerPositions.push(positions);
      const s = decimationSlot(decimation, i);
      const chooser: RowChooser | undefined =
        s >= 0
          ? (delta, n) =>
              keptRows(n, protect, s, decimation!, (contextLen) => deltaScores(delta, this.config.dInner, contextLen))
          : undefined;
      const mixed = mambaMixer(layer, this.config, normed, rows, stateIn[i]!, chooser);
      if (mixed.kept) {
        // The residual stream follows the kept tokens; every later layer sees only them.
        residual = gatherRows(residual, dModel, mixed.kept);
        positions = composeIndices(positions, mixed.kept);
        kept.push({ layer: i, indices: positions }); // only layers that dropped tokens, as train/ (and the fixtures) report
      }
      hidden = mixed.out;
      rows = mixed.rowsOut;
      state.push(mixed.state);
    });

    const final = rmsNorm(add(hidden, residual!), rows, this.weights.normF.data, normEpsilon);
    return { final, positions, state, kept };
  }

  private embed(ids: ArrayLike<number>): Float32Array {
    const { dModel } = this.config;
    const table = this.weights.embedding.data;
    const out = new Float32Array(ids.length * dModel);
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t]!; // checked by validateRequest or checkStepTokens
      out.set(table.subarray(id * dModel, (id + 1) * dModel), t * dModel);
    }
    return out;
  }

  /** lm_head over one row of the final hidden states. */
  private logitsAt(final: Float32Array, row: number): Float32Array {
    const { dModel, vocabSize } = this.config;
    const head = this.weights.lmHead.data;
    const logits = new Float32Array(vocabSize);
    const x = row * dModel;
    for (let v = 0; v < vocabSize; v++) {
      let acc = 0;
      const w = v * dModel;
      for (let i = 0; i < dModel; i++) acc += head[w + i]! * final[x + i]!;
      logits[v] = acc;
    }
    return logits;
  }
}
