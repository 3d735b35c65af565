// The CUDA engine's input checks, before anything reaches the device: a bad request is an EngineInputError (the
// runner fails the job without retrying it), as on every engine.
import { validateDecimation } from '../decimation.ts';
import type { DecimationConfig, MambaConfig, ModelState, PrefillOptions } from '../engine.ts';
import { EngineInputError } from '../engine.ts';

export interface BatchRequest {
  ids: ArrayLike<number>;
  options?: PrefillOptions;
  /** Return log-probabilities (log-softmax on the device) instead of raw logits. */
  logProbs?: boolean;
}

export interface ValidRequest {
  ids: Int32Array;
  decimation: DecimationConfig | null;
  protect: number;
  positions: number[];
  logProbs: boolean;
}

export function validateRequest(r: BatchRequest, config: MambaConfig): ValidRequest {
  const { vocabSize, nLayer } = config;
  const options = r.options ?? {};
  if (r.ids.length === 0) throw new EngineInputError('prefill: empty input');
  const ids = new Int32Array(r.ids.length);
  for (let t = 0; t < r.ids.length; t++) {
    const id = r.ids[t]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize)
      throw new EngineInputError(`token id ${id} at position ${t} is outside the vocabulary [0, ${vocabSize})`);
    ids[t] = id;
  }
  const decimation = options.decimation ?? null;
  if (decimation) validateDecimation(decimation, nLayer);
  const requested = options.logitPositions ?? 'last';
  let positions: number[];
  if (requested === 'last') positions = [ids.length - 1];
  else if (requested === 'all') positions = Array.from({ length: ids.length }, (_, i) => i);
  else {
    for (const p of requested) {
      if (!Number.isInteger(p) || p < 0 || p >= ids.length)
        throw new EngineInputError(`prefill: logit position ${p} is outside [0, ${ids.length})`);
    }
    positions = [...requested];
  }
  return { ids, decimation, protect: options.protect ?? 1, positions, logProbs: r.logProbs ?? false };
}

export function checkState(state: ModelState, config: MambaConfig): void {
  const { nLayer, dInner, dConv, dState } = config;
  if (state.length !== nLayer)
    throw new EngineInputError(`step: state has ${state.length} layers, the model ${nLayer}`);
  state.forEach((s, i) => {
    if (s.conv.length !== dInner * dConv || s.ssm.length !== dInner * dState)
      throw new EngineInputError(`step: layer ${i} state has the wrong size`);
  });
}
