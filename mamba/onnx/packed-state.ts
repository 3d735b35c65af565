// The lean step graph's packed state [n_layer, d_conv + d_state, d_inner] ↔ the engine-neutral ModelState
// (per layer conv [d_inner, d_conv], ssm [d_inner, d_state]). Decoding passes the packed buffer from step to step
// untouched: the ModelState the engine returns reads it lazily, only if a caller looks at conv/ssm.
import type { LayerState, MambaConfig, ModelState } from '../engine.ts';

const packedOf = new WeakMap<ModelState, Float32Array>();

/** The packed buffer behind a state this module made, if it is one. */
export const knownPacked = (state: ModelState): Float32Array | undefined => packedOf.get(state);

export function packState(state: ModelState, c: MambaConfig): Float32Array {
  const known = packedOf.get(state);
  if (known) return known;
  const { dInner, dConv, dState } = c;
  const rows = dConv + dState;
  const out = new Float32Array(c.nLayer * rows * dInner);
  state.forEach((s, l) => {
    const base = l * rows * dInner;
    for (let ch = 0; ch < dInner; ch++) {
      for (let k = 0; k < dConv; k++) out[base + k * dInner + ch] = s.conv[ch * dConv + k];
      for (let n = 0; n < dState; n++) out[base + (dConv + n) * dInner + ch] = s.ssm[ch * dState + n];
    }
  });
  return out;
}

/** A ModelState over `packed` (which it then owns); each layer's arrays are built on first read. */
export function unpackedView(packed: Float32Array, c: MambaConfig): ModelState {
  const { dInner, dConv, dState } = c;
  const rows = dConv + dState;
  const layer = (l: number): LayerState => {
    const base = l * rows * dInner;
    let conv: Float32Array | null = null;
    let ssm: Float32Array | null = null;
    return {
      get conv() {
        if (!conv) {
          conv = new Float32Array(dInner * dConv);
          for (let ch = 0; ch < dInner; ch++)
            for (let k = 0; k < dConv; k++) conv[ch * dConv + k] = packed[base + k * dInner + ch];
        }
        return conv;
      },
      get ssm() {
        if (!ssm) {
          ssm = new Float32Array(dInner * dState);
          for (let ch = 0; ch < dInner; ch++)
            for (let n = 0; n < dState; n++) ssm[ch * dState + n] = packed[base + (dConv + n) * dInner + ch];
        }
        return ssm;
      },
    };
  };
  const state = Array.from({ length: c.nLayer }, (_, l) => layer(l));
  packedOf.set(state, packed);
  return state;
}
