// Shared test helpers: tiny random models and comparisons.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MambaConfig, MambaWeights, ModelState, Tensor } from '../mamba/engine.ts';
import { randomConfig, randomWeights, type RandomCheckpointOptions } from '../mamba/random-checkpoint.ts';
import { ReferenceEngine } from '../mamba/reference/index.ts';
import { createRng } from '../mamba/rng.ts';
import { logSoftmax } from '../mamba/sampling.ts';

export interface TinyModel {
  config: MambaConfig;
  weights: MambaWeights;
  engine: ReferenceEngine;
}

/** A random model in memory; `biases` adds in_proj/out_proj biases (HF use_bias) to cover that path too. */
export function tinyModel(opts: Partial<RandomCheckpointOptions> & { biases?: boolean } = {}): TinyModel {
  const config = randomConfig({ dModel: 16, nLayer: 2, dState: 4, dConv: 4, expand: 2, ...opts });
  const weights = randomWeights(config, opts.seed ?? 1);
  if (opts.biases) {
    config.useProjBias = true;
    const rng = createRng(99);
    const vec = (n: number): Tensor => ({
      shape: [n],
      data: Float32Array.from({ length: n }, () => 0.1 * rng.normal()),
    });
    for (const layer of weights.layers) {
      layer.inProjBias = vec(2 * config.dInner);
      layer.outProjBias = vec(config.dModel);
    }
  }
  return { config, weights, engine: new ReferenceEngine(config, weights) };
}

export function randomIds(n: number, vocab: number, seed: number): number[] {
  const rng = createRng(seed);
  return Array.from({ length: n }, () => rng.int(vocab));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function maxStateDiff(a: ModelState, b: ModelState): number {
  return Math.max(...a.map((s, i) => Math.max(maxAbsDiff(s.conv, b[i]!.conv), maxAbsDiff(s.ssm, b[i]!.ssm))));
}

export function tempDir(prefix = 'deciserve-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** KL(softmax(p) ‖ softmax(q)) in nats, for quantized logits against fp32 ones. */
export function klDivergence(p: Float32Array, q: Float32Array): number {
  const [a, b] = [logSoftmax(p), logSoftmax(q)];
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.exp(a[i]!) * (a[i]! - b[i]!);
  return s;
}
