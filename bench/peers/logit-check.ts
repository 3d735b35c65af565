// Logits of each engine against the TS reference engine on one prompt: max |Δ| at the last position, and (where the
// engine returns every position) the mean KL(reference ‖ engine) over all positions, in nats.
import type { MambaConfig, MambaWeights } from '../../mamba/engine.ts';
import { ReferenceEngine } from '../../mamba/reference/index.ts';

export interface LogitSource {
  name: string;
  lastLogits(ids: number[]): Promise<Float32Array>;
  allLogits?(ids: number[]): Promise<Float32Array[]>;
}
export interface LogitCheck {
  name: string;
  maxAbs: number;
  meanKl?: number;
}

function logSoftmax(l: Float32Array): Float64Array {
  let m = -Infinity;
  for (const v of l) m = Math.max(m, v);
  let z = 0;
  for (const v of l) z += Math.exp(v - m);
  return Float64Array.from(l, (v) => v - m - Math.log(z));
}

export function kl(p: Float32Array, q: Float32Array): number {
  const [a, b] = [logSoftmax(p), logSoftmax(q)];
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.exp(a[i]) * (a[i] - b[i]);
  return s;
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`logit rows differ in length: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Number.isNaN(b[i]) ? Infinity : Math.abs(a[i] - b[i]));
  return m;
}

export async function checkLogits(
  model: { config: MambaConfig; weights: MambaWeights },
  ids: number[],
  sources: LogitSource[],
): Promise<LogitCheck[]> {
  const ref = await new ReferenceEngine(model.config, model.weights).prefill(ids, { logitPositions: 'all' });
  const last = ref.logits[ref.logits.length - 1];
  const out: LogitCheck[] = [];
  for (const s of sources) {
    const check: LogitCheck = { name: s.name, maxAbs: maxAbsDiff(last, await s.lastLogits(ids)) };
    if (s.allLogits) {
      const rows = await s.allLogits(ids);
      check.meanKl = rows.reduce((acc, r, i) => acc + kl(ref.logits[i], r), 0) / rows.length;
    }
    out.push(check);
  }
  return out;
}
