// Reads a checkpoint's config.json (HF `MambaConfig` or mamba_ssm names) into a resolved MambaConfig.
import { z } from 'zod';
import type { MambaConfig } from './engine.ts';

const positiveInt = z.number().int().positive();

// Unknown keys pass through untouched: real config.json files carry many fields we do not need
// (initializer_range, time_step_min, bos_token_id, ...).
const ssmCfgSchema = z.looseObject({
  d_state: positiveInt.optional(),
  d_conv: positiveInt.optional(),
  expand: z.number().positive().optional(),
  dt_rank: z.union([positiveInt, z.literal('auto')]).optional(),
  conv_bias: z.boolean().optional(),
  bias: z.boolean().optional(),
  layer: z.literal('Mamba1', { error: 'only Mamba-1 checkpoints are supported' }).optional(),
});

const configSchema = z.looseObject({
  model_type: z.literal('mamba', { error: 'only model_type "mamba" (Mamba-1) is supported' }).optional(),
  // HF names
  hidden_size: positiveInt.optional(),
  num_hidden_layers: positiveInt.optional(),
  state_size: positiveInt.optional(),
  conv_kernel: positiveInt.optional(),
  expand: z.number().positive().optional(),
  time_step_rank: z.union([positiveInt, z.literal('auto')]).optional(),
  layer_norm_epsilon: z.number().positive().optional(),
  use_bias: z.boolean().optional(),
  use_conv_bias: z.boolean().optional(),
  tie_word_embeddings: z.boolean().optional(),
  // mamba_ssm names
  d_model: positiveInt.optional(),
  n_layer: positiveInt.optional(),
  ssm_cfg: ssmCfgSchema.optional(),
  rms_norm: z.literal(true, { error: 'only RMSNorm checkpoints are supported (rms_norm must be true)' }).optional(),
  norm_epsilon: z.number().positive().optional(),
  tie_embeddings: z.boolean().optional(),
  // shared
  vocab_size: positiveInt,
  pad_vocab_size_multiple: positiveInt.optional(),
  residual_in_fp32: z.boolean().optional(),
});

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Picks the one value given under either name; both given and different is an error naming both. */
function either<T>(hfName: string, hf: T | undefined, ssmName: string, ssm: T | undefined): T | undefined {
  if (hf !== undefined && ssm !== undefined && hf !== ssm) {
    throw new ConfigError(`config fields ${hfName} (${String(hf)}) and ${ssmName} (${String(ssm)}) disagree`);
  }
  return hf ?? ssm;
}

function required<T>(name: string, value: T | undefined): T {
  if (value === undefined) throw new ConfigError(`missing config field ${name}`);
  return value;
}

export function parseConfig(json: unknown): MambaConfig {
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.length > 0 ? issue.path.join('.') : '(root)';
    throw new ConfigError(`invalid config field ${field}: ${issue.message}`);
  }
  const c = parsed.data;
  const ssm = c.ssm_cfg ?? {};
  const dModel = required('hidden_size (or d_model)', either('hidden_size', c.hidden_size, 'd_model', c.d_model));
  const nLayer = required(
    'num_hidden_layers (or n_layer)',
    either('num_hidden_layers', c.num_hidden_layers, 'n_layer', c.n_layer),
  );
  const dState = either('state_size', c.state_size, 'ssm_cfg.d_state', ssm.d_state) ?? 16;
  const dConv = either('conv_kernel', c.conv_kernel, 'ssm_cfg.d_conv', ssm.d_conv) ?? 4;
  const expand = either('expand', c.expand, 'ssm_cfg.expand', ssm.expand) ?? 2;
  const dtRankRaw = either('time_step_rank', c.time_step_rank, 'ssm_cfg.dt_rank', ssm.dt_rank) ?? 'auto';
  const dInner = expand * dModel;
  if (!Number.isInteger(dInner))
    throw new ConfigError(`invalid config field expand: expand * d_model (${dInner}) is not an integer`);
  // mamba_ssm pads the vocabulary (MambaLMHeadModel.__init__); HF checkpoints are saved already padded.
  const padVocabSizeMultiple = c.pad_vocab_size_multiple ?? 8;
  const vocabSize = Math.ceil(c.vocab_size / padVocabSizeMultiple) * padVocabSizeMultiple;
  return {
    dModel,
    nLayer,
    dState,
    dConv,
    expand,
    dInner,
    dtRank: dtRankRaw === 'auto' ? Math.ceil(dModel / 16) : dtRankRaw,
    vocabSize,
    padVocabSizeMultiple,
    rmsNorm: true,
    normEpsilon: either('layer_norm_epsilon', c.layer_norm_epsilon, 'norm_epsilon', c.norm_epsilon) ?? 1e-5,
    residualInFp32: c.residual_in_fp32 ?? true,
    tieEmbeddings: either('tie_word_embeddings', c.tie_word_embeddings, 'tie_embeddings', c.tie_embeddings) ?? true,
    useConvBias: either('use_conv_bias', c.use_conv_bias, 'ssm_cfg.conv_bias', ssm.conv_bias) ?? true,
    useProjBias: either('use_bias', c.use_bias, 'ssm_cfg.bias', ssm.bias) ?? false,
  };
}
