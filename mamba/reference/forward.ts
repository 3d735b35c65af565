// The reference forward pass, as pure functions over a prepared checkpoint: embedding → the one block loop (residual
// add, RMSNorm, mixer, optional decimation) → norm_f, over L tokens from a zero state or one token from a given
// state. ReferenceEngine (engine.ts) serves it through the engine contract; referenceTrace exposes the mixer inputs.
import { composeIndices, decimationSlot, deltaScores, identityIndices, keptRows } from '../decimation.ts';
import type {
  DecimationConfig,
  KeptIndices,
  MambaConfig,
  MambaWeights,
  ModelState,
  PrefillOptions,
} from '../engine.ts';
import { emptyState, validateRequest } from '../engine-input.ts';
import { mambaMixer, type PreparedLayer, prepareLayer, type RowChooser } from './mixer.ts';
import { add, gatherRows, rmsNorm } from './ops.ts';

/** A checkpoint with each layer's derived values computed once. */
export interface ReferenceModel {
  config: MambaConfig;
  weights: MambaWeights;
  layers: PreparedLayer[];
}

export function prepareModel(config: MambaConfig, weights: MambaWeights): ReferenceModel {
  return { config, weights, layers: weights.layers.map(prepareLayer) };
}

export interface ForwardResult {
  /** norm_f output for the surviving rows, [rows, dModel]. */
  final: Float32Array;
  /** Original position of each surviving row. */
  positions: Int32Array;
  state: ModelState;
  kept: KeptIndices[];
}

/**
 * Per layer: the mixer's input (RMSNorm(residual), [rows, dModel]) and the original position of each row; per
 * decimating layer that scored its context, the ‖Δ‖ scores by original position (how near a tie each choice was).
 */
export interface Trace {
  mixerInputs: Float32Array[];
  layerPositions: Int32Array[];
  scores: { layer: number; positions: Int32Array; scores: Float64Array }[];
}

/** Embedding → blocks → norm_f. Inputs are already checked (engine-input.ts). */
export function forward(
  model: ReferenceModel,
  ids: ArrayLike<number>,
  stateIn: ModelState,
  decimation: DecimationConfig | null,
  protect: number,
  trace?: Trace,
): ForwardResult {
  const { config, weights } = model;
  const { dModel, normEpsilon } = config;
  let rows = ids.length;
  let hidden = embed(model, ids);
  let residual: Float32Array | null = null;
  let positions = identityIndices(rows);
  const state: ModelState = [];
  const kept: KeptIndices[] = [];

  model.layers.forEach((layer, i) => {
    residual = residual ? add(hidden, residual) : hidden;
    const normed = rmsNorm(residual, rows, layer.weights.norm.data, normEpsilon);
    trace?.mixerInputs.push(normed);
    trace?.layerPositions.push(positions);
    const s = decimationSlot(decimation, i);
    const scored = (delta: Float32Array, contextLen: number) => {
      const scores = deltaScores(delta, config.dInner, contextLen);
      trace?.scores.push({ layer: i, positions: positions.slice(0, contextLen), scores });
      return scores;
    };
    const chooser: RowChooser | undefined =
      s >= 0
        ? (delta, n) => keptRows(n, protect, s, decimation!, (contextLen) => scored(delta, contextLen))
        : undefined;
    const mixed = mambaMixer(layer, config, normed, rows, stateIn[i]!, chooser);
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

  const final = rmsNorm(add(hidden, residual!), rows, weights.normF.data, normEpsilon);
  return { final, positions, state, kept };
}

function embed(model: ReferenceModel, ids: ArrayLike<number>): Float32Array {
  const { dModel } = model.config;
  const table = model.weights.embedding.data;
  const out = new Float32Array(ids.length * dModel);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t]!; // checked by validateRequest or checkToken
    out.set(table.subarray(id * dModel, (id + 1) * dModel), t * dModel);
  }
  return out;
}

/** lm_head over one row of the final hidden states. */
export function logitsAt(model: ReferenceModel, final: Float32Array, row: number): Float32Array {
  const { dModel, vocabSize } = model.config;
  const head = model.weights.lmHead.data;
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

/**
 * A prefill from the zero state that also returns each mixer's input and the original positions of its rows, so
 * tests can replay single layers step by step.
 */
export function referenceTrace(
  model: ReferenceModel,
  ids: ArrayLike<number>,
  options: PrefillOptions = {},
): Trace & Pick<ForwardResult, 'state' | 'kept'> {
  const req = validateRequest(ids, options, model.config);
  const trace: Trace = { mixerInputs: [], layerPositions: [], scores: [] };
  const { state, kept } = forward(model, req.ids, emptyState(model.config), req.decimation, req.protect, trace);
  return { state, kept, ...trace };
}
