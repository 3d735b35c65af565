// A Mamba-1 checkpoint as a llama.cpp GGUF ("mamba" architecture): tensor names and layouts as llama.cpp loads them,
// the byte-level BPE tokenizer as tokenizer.ggml.model "gpt2" with the "starcoder" pre-tokenizer (digits split one by
// one, then GPT-2's byte-level regex: the same split as this tokenizer.json). Only plain Mamba: DeciMamba is ours.
import type { MambaConfig, MambaWeights, Tensor } from '../engine.ts';
import { f32ToF16Bits } from '../safetensors.ts';
import { type GgmlTypeCode, GgmlType, type GgufTensor, type GgufValue, GgufError, writeGguf } from './writer.ts';

export type GgufPrecision = 'f32' | 'q8_0';

export interface GgufTokenizer {
  /** Token strings by id (byte-level BPE spelling), exactly vocabSize long after padding. */
  tokens: string[];
  /** BPE merges as "left right". */
  merges: string[];
  /** Ids of special (control) tokens. */
  special: number[];
  eosId: number;
  bosId: number;
}

/** tokenizer.json (a BPE model) → the parts GGUF stores; pads the vocabulary to the model's size. */
export function ggufTokenizer(json: unknown, vocabSize: number): GgufTokenizer {
  const j = json as {
    model?: { type?: string; vocab?: Record<string, number>; merges?: (string | [string, string])[] };
    added_tokens?: { id: number; content: string; special?: boolean }[];
  };
  if (j.model?.type !== 'BPE' || !j.model.vocab) throw new GgufError('tokenizer.json is not a BPE model');
  const tokens = new Array<string | undefined>(vocabSize);
  for (const [text, id] of Object.entries(j.model.vocab)) {
    if (id >= vocabSize) throw new GgufError(`token id ${id} is outside the model's vocabulary of ${vocabSize}`);
    tokens[id] = text;
  }
  const special: number[] = [];
  for (const t of j.added_tokens ?? []) {
    tokens[t.id] = t.content;
    if (t.special) special.push(t.id);
  }
  for (let i = 0; i < vocabSize; i++) tokens[i] ??= `[PAD${i}]`;
  const merges = (j.model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const eos = tokens.indexOf('<|endoftext|>');
  return { tokens: tokens as string[], merges, special, eosId: Math.max(eos, 0), bosId: Math.max(eos, 0) };
}

/** ggml's Q8_0: per block of 32 values, d = max|x| / 127 (stored f16) and q = round(x / d). */
export function quantizeQ8_0(values: Float32Array): Uint8Array {
  if (values.length % 32 !== 0) throw new GgufError(`Q8_0 needs a multiple of 32 values, got ${values.length}`);
  const out = new Uint8Array((values.length / 32) * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < values.length / 32; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(values[b * 32 + i]));
    const d = amax / 127;
    const inv = d ? 1 / d : 0;
    view.setUint16(b * 34, f32ToF16Bits(d), true);
    for (let i = 0; i < 32; i++) {
      const x = values[b * 32 + i] * inv;
      view.setInt8(b * 34 + 2 + i, Math.sign(x) * Math.round(Math.abs(x))); // ties away from zero, like roundf
    }
  }
  return out;
}

const f32Bytes = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** Row-major [rows, cols] → ggml ne [cols, rows]; the bytes are the same. */
function tensor(name: string, t: Tensor | Float32Array, ne: number[], type: GgmlTypeCode): GgufTensor {
  const data = t instanceof Float32Array ? t : t.data;
  const count = ne.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new GgufError(`${name}: ${data.length} values, expected ${count} for ne [${ne}]`);
  return { name, ne, type, data: type === GgmlType.Q8_0 ? quantizeQ8_0(data) : f32Bytes(data) };
}

export interface MambaGgufOptions {
  precision?: GgufPrecision;
  name?: string;
  contextLength?: number;
}

export function mambaGguf(
  config: MambaConfig,
  weights: MambaWeights,
  tok: GgufTokenizer,
  options: MambaGgufOptions = {},
): Uint8Array {
  const { dModel, dInner, dState, dConv, dtRank, vocabSize, nLayer } = config;
  if (!config.rmsNorm) throw new GgufError('llama.cpp Mamba uses RMSNorm; this checkpoint uses LayerNorm');
  if (config.useProjBias) throw new GgufError('llama.cpp Mamba has no in_proj/out_proj bias');
  if (tok.tokens.length !== vocabSize)
    throw new GgufError(`tokenizer has ${tok.tokens.length} tokens, model ${vocabSize}`);
  const precision = options.precision ?? 'f32';
  // Matrices with a 32-multiple row go to Q8_0 (as llama-quantize would); vectors, conv and A stay f32.
  const mat = precision === 'q8_0' ? GgmlType.Q8_0 : GgmlType.F32;
  const F32 = GgmlType.F32;

  const tensors: GgufTensor[] = [tensor('token_embd.weight', weights.embedding, [dModel, vocabSize], mat)];
  weights.layers.forEach((l, i) => {
    const p = `blk.${i}`;
    const a = new Float32Array(l.aLog.data.length);
    for (let k = 0; k < a.length; k++) a[k] = -Math.exp(l.aLog.data[k]);
    tensors.push(
      tensor(`${p}.attn_norm.weight`, l.norm, [dModel], F32),
      tensor(`${p}.ssm_in.weight`, l.inProj, [dModel, 2 * dInner], mat),
      tensor(`${p}.ssm_conv1d.weight`, l.convWeight, [dConv, dInner], F32),
      ...(l.convBias ? [tensor(`${p}.ssm_conv1d.bias`, l.convBias, [dInner], F32)] : []),
      tensor(`${p}.ssm_x.weight`, l.xProj, [dInner, dtRank + 2 * dState], mat),
      tensor(`${p}.ssm_dt.weight`, l.dtProjWeight, [dtRank, dInner], dtRank % 32 === 0 ? mat : F32),
      tensor(`${p}.ssm_dt.bias`, l.dtProjBias, [dInner], F32),
      tensor(`${p}.ssm_a`, a, [dState, dInner], F32),
      tensor(`${p}.ssm_d`, l.d, [dInner], F32),
      tensor(`${p}.ssm_out.weight`, l.outProj, [dInner, dModel], mat),
    );
  });
  tensors.push(tensor('output_norm.weight', weights.normF, [dModel], F32));
  if (weights.lmHead !== weights.embedding)
    tensors.push(tensor('output.weight', weights.lmHead, [dModel, vocabSize], mat));

  const kv = new Map<string, GgufValue>([
    ['general.architecture', { type: 'string', value: 'mamba' }],
    ['general.name', { type: 'string', value: options.name ?? 'deciserve-mamba' }],
    ['general.file_type', { type: 'u32', value: precision === 'q8_0' ? 7 : 0 }], // LLAMA_FTYPE_ALL_F32 / MOSTLY_Q8_0
    ['mamba.context_length', { type: 'u32', value: options.contextLength ?? 2048 }],
    ['mamba.embedding_length', { type: 'u32', value: dModel }],
    ['mamba.block_count', { type: 'u32', value: nLayer }],
    ['mamba.feed_forward_length', { type: 'u32', value: 0 }],
    ['mamba.attention.head_count', { type: 'u32', value: 0 }],
    ['mamba.attention.layer_norm_rms_epsilon', { type: 'f32', value: config.normEpsilon }],
    ['mamba.ssm.conv_kernel', { type: 'u32', value: dConv }],
    ['mamba.ssm.inner_size', { type: 'u32', value: dInner }],
    ['mamba.ssm.state_size', { type: 'u32', value: dState }],
    ['mamba.ssm.time_step_rank', { type: 'u32', value: dtRank }],
    ['mamba.ssm.dt_b_c_rms', { type: 'bool', value: false }],
    ['tokenizer.ggml.model', { type: 'string', value: 'gpt2' }],
    ['tokenizer.ggml.pre', { type: 'string', value: 'starcoder' }],
    ['tokenizer.ggml.tokens', { type: 'string[]', value: tok.tokens }],
    // 1 = normal, 3 = control (llama.cpp's token attribute types).
    [
      'tokenizer.ggml.token_type',
      { type: 'i32[]', value: tok.tokens.map((_, id) => (tok.special.includes(id) ? 3 : 1)) },
    ],
    ['tokenizer.ggml.merges', { type: 'string[]', value: tok.merges }],
    ['tokenizer.ggml.bos_token_id', { type: 'u32', value: tok.bosId }],
    ['tokenizer.ggml.eos_token_id', { type: 'u32', value: tok.eosId }],
    ['tokenizer.ggml.add_bos_token', { type: 'bool', value: false }],
  ]);
  return writeGguf(kv, tensors);
}
