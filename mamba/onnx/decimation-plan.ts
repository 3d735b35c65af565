// How many context tokens each layer keeps, decided before running: K depends only on lengths, never on values,
// so the engine computes it in JS with the shared mamba/decimation.ts rules and feeds it to the graph.
import { clampProtect, decimationK, decimationSlot } from '../decimation.ts';
import type { DecimationConfig } from '../engine.ts';

export interface DecimationPlan {
  /** Per layer: context tokens to keep, or −1 when the layer passes every token through. */
  keep: number[];
  /** Sequence length after the last layer. */
  finalLength: number;
  /** Layers that dropped tokens: they report kept indices (as the reference, train/ and the fixtures do). */
  reported: number[];
}

export function planDecimation(length: number, protect: number, nLayer: number, dec: DecimationConfig | null): DecimationPlan {
  const keep = new Array<number>(nLayer).fill(-1);
  const reported: number[] = [];
  let len = length;
  for (let layer = 0; layer < nLayer; layer++) {
    const s = decimationSlot(dec, layer);
    if (s < 0) continue;
    const tail = clampProtect(protect, len);
    const ctx = len - tail;
    if (ctx <= 0) continue;
    const k = decimationK(s, ctx, dec!);
    if (k < ctx) {
      keep[layer] = k;
      len = k + tail;
      reported.push(layer);
    }
  }
  return { keep, finalLength: len, reported };
}
