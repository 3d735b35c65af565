// The input checks every engine runs before any work (once, here, so the same bad input gets the same
// EngineInputError on the reference, ONNX and CUDA engines, and the runner fails the job without retrying it).
import { validateDecimation } from './decimation.ts';
import type { DecimationConfig, MambaConfig, ModelState, PrefillOptions } from './engine.ts';
import { EngineInputError } from './engine.ts';

/** A prefill request with its options resolved and checked. */
export interface ValidRequest {
  ids: Int32Array;
  decimation: DecimationConfig | null;
  /** As asked (engines clamp it to the prompt where they need to: clampProtect). */
  protect: number;
  /** Original positions whose logits are returned, in the order asked. */
  positions: number[];
}

/** Token ids as an Int32Array, each inside the vocabulary. */
export function checkIds(ids: ArrayLike<number>, vocabSize: number): Int32Array {
  if (ids.length === 0) throw new EngineInputError('prefill: empty input');
  const out = new Int32Array(ids.length);
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t]!;
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize)
      throw new EngineInputError(`token id ${id} at position ${t} is outside the vocabulary [0, ${vocabSize})`);
    out[t] = id;
  }
  return out;
}

export function resolveLogitPositions(requested: PrefillOptions['logitPositions'], length: number): number[] {
  if (requested === 'last' || requested === undefined) return [length - 1];
  if (requested === 'all') return Array.from({ length }, (_, i) => i);
  for (const p of requested) {
    if (!Number.isInteger(p) || p < 0 || p >= length)
      throw new EngineInputError(`prefill: logit position ${p} is outside [0, ${length})`);
  }
  return [...requested];
}

export function validateRequest(ids: ArrayLike<number>, options: PrefillOptions, config: MambaConfig): ValidRequest {
  const checked = checkIds(ids, config.vocabSize);
  const decimation = options.decimation ?? null;
  if (decimation) validateDecimation(decimation, config.nLayer);
  const positions = resolveLogitPositions(options.logitPositions, checked.length);
  return { ids: checked, decimation, protect: options.protect ?? 1, positions };
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

export function checkToken(token: number, vocabSize: number): void {
  if (!Number.isInteger(token) || token < 0 || token >= vocabSize)
    throw new EngineInputError(`token id ${token} is outside the vocabulary [0, ${vocabSize})`);
}

/** One token per sequence, each inside the vocabulary or −1 (a finished sequence, DecodeSession.step). */
export function checkStepTokens(tokens: ArrayLike<number>, batch: number, vocabSize: number): void {
  if (tokens.length !== batch)
    throw new EngineInputError(`decode step: ${tokens.length} tokens for a batch of ${batch}`);
  for (let i = 0; i < tokens.length; i++) if (tokens[i] !== -1) checkToken(tokens[i]!, vocabSize);
}

/** All-zero conv and ssm states: the state before the first token. */
export function emptyState(config: MambaConfig): ModelState {
  const { nLayer, dInner, dConv, dState } = config;
  return Array.from({ length: nLayer }, () => ({
    conv: new Float32Array(dInner * dConv),
    ssm: new Float32Array(dInner * dState),
  }));
}
