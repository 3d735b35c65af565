// Deterministic tiny random Mamba-1 checkpoints in the HF format, so tests and demos need no trained model.
// Init follows mamba_ssm (Mamba.__init__ and _init_weights) so the dynamics look like a real, untrained Mamba.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { byteLevelTokenizerJson } from './byte-tokenizer.ts';
import { parseConfig } from './config.ts';
import type { LayerWeights, MambaConfig, MambaWeights, Tensor } from './engine.ts';
import { createRng, type Rng } from './rng.ts';
import { writeSafetensors } from './safetensors.ts';

export interface RandomCheckpointOptions {
  dModel: number;
  nLayer: number;
  dState?: number;
  dConv?: number;
  expand?: number;
  /** Raised to the tokenizer's size if smaller, then padded to a multiple of 8. */
  vocabSize?: number;
  seed: number;
  /** Write a separate lm_head.weight (untied). Default false (tied, like public Mamba checkpoints). */
  untied?: boolean;
}

export function randomConfig(opts: Omit<RandomCheckpointOptions, 'seed'>): MambaConfig {
  const { dModel, nLayer, dState = 16, dConv = 4, expand = 2 } = opts;
  // Read as its config.json would be, so d_inner, dt_rank, the padded vocabulary and the defaults follow the loader.
  return parseConfig({
    hidden_size: dModel,
    num_hidden_layers: nLayer,
    state_size: dState,
    conv_kernel: dConv,
    expand,
    vocab_size: Math.max(opts.vocabSize ?? 0, byteLevelTokenizerJson().vocabSize),
    tie_word_embeddings: !opts.untied,
  });
}

function tensor(shape: number[], fill: (i: number) => number): Tensor {
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = fill(i);
  return { shape, data };
}

const uniform = (rng: Rng, bound: number) => () => (2 * rng.next() - 1) * bound;

function randomLayer(config: MambaConfig, rng: Rng): LayerWeights {
  const { dModel, dInner, dState, dConv, dtRank, nLayer } = config;
  const dtMin = 1e-3;
  const dtMax = 1e-1;
  return {
    // Real norms are ones at init; a ±10% jitter keeps tests sensitive to a norm weight being skipped.
    norm: tensor([dModel], () => 1 + 0.1 * (2 * rng.next() - 1)),
    // nn.Linear / nn.Conv1d default init: U(±1/sqrt(fan_in))
    inProj: tensor([2 * dInner, dModel], uniform(rng, 1 / Math.sqrt(dModel))),
    inProjBias: null,
    convWeight: tensor([dInner, 1, dConv], uniform(rng, 1 / Math.sqrt(dConv))),
    convBias: tensor([dInner], uniform(rng, 1 / Math.sqrt(dConv))),
    xProj: tensor([dtRank + 2 * dState, dInner], uniform(rng, 1 / Math.sqrt(dInner))),
    dtProjWeight: tensor([dInner, dtRank], uniform(rng, dtRank ** -0.5)),
    // dt bias = softplus⁻¹(dt) with dt log-uniform in [dt_min, dt_max]
    dtProjBias: tensor([dInner], () => {
      const dt = Math.max(Math.exp(rng.next() * (Math.log(dtMax) - Math.log(dtMin)) + Math.log(dtMin)), 1e-4);
      return dt + Math.log(-Math.expm1(-dt));
    }),
    aLog: tensor([dInner, dState], (i) => Math.log(1 + (i % dState))), // S4D-real: A = −(1..d_state)
    d: tensor([dInner], () => 1),
    // GPT-2 style rescale of the residual output projection by 1/sqrt(n_layer)
    outProj: tensor([dModel, dInner], uniform(rng, 1 / Math.sqrt(dInner) / Math.sqrt(nLayer))),
    outProjBias: null,
  };
}

export function randomWeights(config: MambaConfig, seed: number): MambaWeights {
  const rng = createRng(seed);
  const { vocabSize, dModel } = config;
  const embedding = tensor([vocabSize, dModel], () => 0.02 * rng.normal());
  const layers = Array.from({ length: config.nLayer }, () => randomLayer(config, rng));
  const normF = tensor([dModel], () => 1 + 0.1 * (2 * rng.next() - 1));
  const lmHead = config.tieEmbeddings ? embedding : tensor([vocabSize, dModel], () => 0.02 * rng.normal());
  return { embedding, layers, normF, lmHead };
}

export type TensorLayout = 'hf' | 'mamba_ssm';

/** Weights as named tensors, in HF (`backbone.embeddings`) or mamba_ssm (`backbone.embedding`) naming. */
export function weightsToTensors(
  config: MambaConfig,
  weights: MambaWeights,
  layout: TensorLayout = 'hf',
): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  out[layout === 'hf' ? 'backbone.embeddings.weight' : 'backbone.embedding.weight'] = weights.embedding;
  weights.layers.forEach((l, i) => {
    const p = `backbone.layers.${i}`;
    out[`${p}.norm.weight`] = l.norm;
    out[`${p}.mixer.in_proj.weight`] = l.inProj;
    if (l.inProjBias) out[`${p}.mixer.in_proj.bias`] = l.inProjBias;
    out[`${p}.mixer.conv1d.weight`] = l.convWeight;
    if (l.convBias) out[`${p}.mixer.conv1d.bias`] = l.convBias;
    out[`${p}.mixer.x_proj.weight`] = l.xProj;
    out[`${p}.mixer.dt_proj.weight`] = l.dtProjWeight;
    out[`${p}.mixer.dt_proj.bias`] = l.dtProjBias;
    out[`${p}.mixer.A_log`] = l.aLog;
    out[`${p}.mixer.D`] = l.d;
    out[`${p}.mixer.out_proj.weight`] = l.outProj;
    if (l.outProjBias) out[`${p}.mixer.out_proj.bias`] = l.outProjBias;
  });
  out['backbone.norm_f.weight'] = weights.normF;
  if (!config.tieEmbeddings) out['lm_head.weight'] = weights.lmHead;
  return out;
}

/** config.json with HF MambaConfig field names. */
export function hfConfigJson(config: MambaConfig): Record<string, unknown> {
  return {
    architectures: ['MambaForCausalLM'],
    model_type: 'mamba',
    hidden_size: config.dModel,
    num_hidden_layers: config.nLayer,
    state_size: config.dState,
    conv_kernel: config.dConv,
    expand: config.expand,
    time_step_rank: config.dtRank,
    vocab_size: config.vocabSize,
    pad_vocab_size_multiple: config.padVocabSizeMultiple,
    layer_norm_epsilon: config.normEpsilon,
    use_bias: config.useProjBias,
    use_conv_bias: config.useConvBias,
    residual_in_fp32: config.residualInFp32,
    tie_word_embeddings: config.tieEmbeddings,
    bos_token_id: 0,
    eos_token_id: 0,
    pad_token_id: 0,
    torch_dtype: 'float32',
  };
}

// Digit-free filler text for the passkey task on random checkpoints (a trained model ships its own haystack.txt).
const FILLER_WORDS = (
  'the of and to in is was that for it with as on be at by this had not are but from or have an they which one you were ' +
  'her all she there would their we him been has when who will more no if out so said what up its about into than them ' +
  'can only other new some could time these two may then do first any my now such like our over man me even most made ' +
  'after also did many before must through back years where much your way well down should because each just those people'
).split(' ');

export function randomHaystack(seed: number, words = 4000): string {
  const rng = createRng(seed ^ 0x5eed);
  const sentences: string[] = [];
  let count = 0;
  while (count < words) {
    const n = 6 + rng.int(10);
    const sentence = Array.from({ length: n }, () => FILLER_WORDS[rng.int(FILLER_WORDS.length)]!).join(' ');
    sentences.push(sentence[0]!.toUpperCase() + sentence.slice(1) + '.');
    count += n;
  }
  return sentences.join(' ') + '\n';
}

/** Writes config.json, model.safetensors (F32), tokenizer.json and haystack.txt into `dir`. */
export async function writeRandomCheckpoint(
  dir: string,
  opts: RandomCheckpointOptions,
): Promise<{ dir: string; config: MambaConfig }> {
  const config = randomConfig(opts);
  const weights = randomWeights(config, opts.seed);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(hfConfigJson(config), null, 2) + '\n');
  await writeFile(join(dir, 'model.safetensors'), writeSafetensors(weightsToTensors(config, weights), 'F32'));
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson().json));
  await writeFile(join(dir, 'haystack.txt'), randomHaystack(opts.seed));
  return { dir, config };
}
