// Maps safetensors tensors onto MambaWeights, checking every name and shape. No filesystem: the Worker passes bytes.
import type { LayerWeights, MambaConfig, MambaWeights, Tensor } from './engine.ts';

/** What weightsFromSafetensors needs from a reader (one file, or several shards merged). */
export interface TensorSource {
  has(name: string): boolean;
  info(name: string): { shape: number[] };
  getF32(name: string): Float32Array;
}

export class WeightsError extends Error {
  override name = 'WeightsError';
}

// The two layouts differ only in the embedding's name (HF `-hf` vs original mamba_ssm).
const EMBEDDING_NAMES = ['backbone.embeddings.weight', 'backbone.embedding.weight'];

export function weightsFromSafetensors(config: MambaConfig, source: TensorSource): MambaWeights {
  const tensor = (name: string, shape: number[]): Tensor => {
    if (!source.has(name)) throw new WeightsError(`missing tensor ${name}`);
    const actual = source.info(name).shape;
    if (actual.length !== shape.length || actual.some((d, i) => d !== shape[i])) {
      throw new WeightsError(`tensor ${name} has shape [${actual.join(', ')}], expected [${shape.join(', ')}]`);
    }
    return { shape, data: source.getF32(name) };
  };
  const optional = (name: string, shape: number[], present: boolean): Tensor | null =>
    present ? tensor(name, shape) : null;

  const { dModel, dInner, dState, dConv, dtRank, vocabSize, nLayer } = config;
  const embeddingName = EMBEDDING_NAMES.find((n) => source.has(n));
  if (!embeddingName) throw new WeightsError(`missing tensor ${EMBEDDING_NAMES[0]} (or ${EMBEDDING_NAMES[1]})`);
  const embedding = tensor(embeddingName, [vocabSize, dModel]);

  const layers: LayerWeights[] = [];
  for (let i = 0; i < nLayer; i++) {
    const p = `backbone.layers.${i}`;
    layers.push({
      norm: tensor(`${p}.norm.weight`, [dModel]),
      inProj: tensor(`${p}.mixer.in_proj.weight`, [2 * dInner, dModel]),
      inProjBias: optional(`${p}.mixer.in_proj.bias`, [2 * dInner], config.useProjBias),
      convWeight: tensor(`${p}.mixer.conv1d.weight`, [dInner, 1, dConv]),
      convBias: optional(`${p}.mixer.conv1d.bias`, [dInner], config.useConvBias),
      xProj: tensor(`${p}.mixer.x_proj.weight`, [dtRank + 2 * dState, dInner]),
      dtProjWeight: tensor(`${p}.mixer.dt_proj.weight`, [dInner, dtRank]),
      dtProjBias: tensor(`${p}.mixer.dt_proj.bias`, [dInner]),
      aLog: tensor(`${p}.mixer.A_log`, [dInner, dState]),
      d: tensor(`${p}.mixer.D`, [dInner]),
      outProj: tensor(`${p}.mixer.out_proj.weight`, [dModel, dInner]),
      outProjBias: optional(`${p}.mixer.out_proj.bias`, [dModel], config.useProjBias),
    });
  }
  const normF = tensor('backbone.norm_f.weight', [dModel]);

  // README: the head is tied to the embedding unless lm_head.weight exists.
  let lmHead: Tensor;
  if (source.has('lm_head.weight')) lmHead = tensor('lm_head.weight', [vocabSize, dModel]);
  else if (config.tieEmbeddings) lmHead = embedding;
  else throw new WeightsError('missing tensor lm_head.weight (config says the embeddings are not tied)');

  return { embedding, layers, normF, lmHead };
}

/** Several shards (model-0000x-of-0000n.safetensors) seen as one source. */
export function mergeSources(sources: TensorSource[]): TensorSource {
  const owner = (name: string): TensorSource | undefined => sources.find((s) => s.has(name));
  return {
    has: (name) => owner(name) !== undefined,
    info: (name) => owner(name)!.info(name),
    getF32: (name) => owner(name)!.getF32(name),
  };
}

/** A [rows, cols] row-major tensor as [cols, rows] (engines that read a weight column-wise store it so). */
export function transpose2d(t: Tensor): Tensor {
  if (t.shape.length !== 2) throw new RangeError(`transpose2d needs a 2-D tensor, got [${t.shape.join(', ')}]`);
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return { shape: [c, r], data: out };
}
