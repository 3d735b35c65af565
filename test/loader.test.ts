// Loading checkpoints: safetensors (f32/f16/bf16), both tensor layouts, tied/untied heads, config.json fields, errors.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCheckpoint, loadModel, weightsFromSafetensors } from '../mamba/checkpoint.ts';
import { parseConfig } from '../mamba/config.ts';
import { hfConfigJson, randomWeights, weightsToTensors, writeRandomCheckpoint } from '../mamba/random-checkpoint.ts';
import { ReferenceEngine } from '../mamba/reference/index.ts';
import {
  bf16BitsToF32,
  f16BitsToF32,
  f32ToBf16Bits,
  f32ToF16Bits,
  readSafetensors,
  writeSafetensors,
} from '../mamba/safetensors.ts';
import { maxAbsDiff, randomIds, tempDir, tinyModel } from './helpers.ts';

const dirs: string[] = [];
const scratch = () => {
  const d = tempDir();
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('safetensors', () => {
  it('round-trips f32 exactly and returns aligned f32 tensors as views (no copy)', () => {
    const a = Float32Array.from([1.5, -2.25, 3e-8, 65536.5, -0]);
    const b = Float32Array.from({ length: 6 }, (_, i) => i / 7);
    const bytes = writeSafetensors({ a: { shape: [5], data: a }, 'nested.b': { shape: [2, 3], data: b } });
    const reader = readSafetensors(bytes);
    expect(reader.names.sort()).toEqual(['a', 'nested.b']);
    expect(reader.info('nested.b')).toMatchObject({ dtype: 'F32', shape: [2, 3] });
    expect(reader.getF32('a')).toEqual(a);
    const view = reader.getF32('nested.b');
    expect(view).toEqual(b);
    expect(view.buffer).toBe(bytes.buffer);
    expect(reader.metadata).toEqual({ format: 'pt' });
  });

  it('reads tensors from an unaligned buffer (a pooled Node Buffer) by copying just that tensor', () => {
    const bytes = writeSafetensors({ a: { shape: [3], data: Float32Array.from([1, 2, 3]) } });
    const shifted = new Uint8Array(bytes.length + 1).subarray(1);
    shifted.set(bytes);
    expect(Array.from(readSafetensors(shifted).getF32('a'))).toEqual([1, 2, 3]);
  });

  it('converts f16 with round-to-nearest-even, subnormals, overflow and NaN', () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-2)).toBe(0xc000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // rounds up to infinity
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // exactly half: ties to even (0)
    expect(f32ToF16Bits(3 * 2 ** -25)).toBe(0x0002); // 1.5 units: ties to even (2)
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00); // halfway between 1 and next: even
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f32ToF16Bits(NaN)).toBe(0x7e00);
    expect(f16BitsToF32(0x3555)).toBeCloseTo(0.333251953125, 12);
    expect(f16BitsToF32(0x0001)).toBe(2 ** -24);
    expect(f16BitsToF32(0xfc00)).toBe(-Infinity);
    for (let bits = 0; bits < 0x7c00; bits += 37) expect(f32ToF16Bits(f16BitsToF32(bits))).toBe(bits); // every finite f16 round-trips
  });

  it('converts bf16 with round-to-nearest-even', () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(bf16BitsToF32(0x3f80)).toBe(1);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN)))).toBe(true);
  });

  it('round-trips f16 and bf16 files within their precision', () => {
    const data = Float32Array.from({ length: 100 }, (_, i) => Math.sin(i) * 3);
    for (const [dtype, rel] of [
      ['F16', 2 ** -11],
      ['BF16', 2 ** -8],
    ] as const) {
      const reader = readSafetensors(writeSafetensors({ w: { shape: [10, 10], data } }, dtype));
      expect(reader.info('w').dtype).toBe(dtype);
      const back = reader.getF32('w');
      data.forEach((v, i) => expect(Math.abs(back[i]! - v)).toBeLessThanOrEqual(Math.abs(v) * rel + 1e-7));
    }
  });

  it('rejects truncated or inconsistent files with a clear message', () => {
    const bytes = writeSafetensors({ w: { shape: [4], data: new Float32Array(4) } });
    expect(() => readSafetensors(bytes.subarray(0, 4))).toThrow(/shorter/);
    expect(() => readSafetensors(bytes.subarray(0, bytes.length - 4))).toThrow(/tensor w/);
    const header = new Uint8Array(bytes);
    new DataView(header.buffer).setBigUint64(0, 10n ** 9n, true);
    expect(() => readSafetensors(header)).toThrow(/header length/);
    expect(() => writeSafetensors({ w: { shape: [3], data: new Float32Array(4) } })).toThrow(/tensor w/);
  });
});

describe('weights', () => {
  const { config, weights, engine } = tinyModel({ nLayer: 2, seed: 4 });
  const ids = randomIds(12, config.vocabSize, 5);
  const reference = engine.prefill(ids, { logitPositions: 'all' }); // awaited in the tests

  const reload = (tensors: ReturnType<typeof weightsToTensors>, dtype: 'F32' | 'F16' | 'BF16' = 'F32', cfg = config) =>
    weightsFromSafetensors(cfg, readSafetensors(writeSafetensors(tensors, dtype)));

  it('loads HF and mamba_ssm names to the same model', async () => {
    const want = await reference;
    for (const layout of ['hf', 'mamba_ssm'] as const) {
      const tensors = weightsToTensors(config, weights, layout);
      expect('backbone.embeddings.weight' in tensors).toBe(layout === 'hf');
      const out = await new ReferenceEngine(config, reload(tensors)).prefill(ids, { logitPositions: 'all' });
      out.logits.forEach((l, t) => expect(maxAbsDiff(l, want.logits[t]!)).toBe(0));
    }
  });

  it('loads f16 and bf16 checkpoints close to the f32 model', async () => {
    const want = await reference;
    for (const [dtype, tol] of [
      ['F16', 2e-3],
      ['BF16', 2e-2],
    ] as const) {
      const out = await new ReferenceEngine(config, reload(weightsToTensors(config, weights), dtype)).prefill(ids, {
        logitPositions: 'all',
      });
      out.logits.forEach((l, t) => expect(maxAbsDiff(l, want.logits[t]!)).toBeLessThan(tol));
    }
  });

  it('names a missing or mis-shaped tensor', () => {
    const missing = weightsToTensors(config, weights);
    delete missing['backbone.layers.1.mixer.A_log'];
    expect(() => reload(missing)).toThrow('missing tensor backbone.layers.1.mixer.A_log');
    const noEmbedding = weightsToTensors(config, weights);
    delete noEmbedding['backbone.embeddings.weight'];
    expect(() => reload(noEmbedding)).toThrow(/missing tensor backbone\.embeddings\.weight/);
    const misShaped = weightsToTensors(config, weights);
    misShaped['backbone.layers.0.mixer.x_proj.weight'] = { shape: [3, 4], data: new Float32Array(12) };
    expect(() => reload(misShaped)).toThrow(
      /tensor backbone\.layers\.0\.mixer\.x_proj\.weight has shape \[3, 4\], expected \[9, 32\]/,
    );
  });

  it('uses lm_head.weight when present, the embedding when tied, and refuses untied without a head', () => {
    const tied = reload(weightsToTensors(config, weights));
    expect(tied.lmHead).toBe(tied.embedding);
    const withHead = {
      ...weightsToTensors(config, weights),
      'lm_head.weight': {
        shape: [config.vocabSize, config.dModel],
        data: new Float32Array(config.vocabSize * config.dModel),
      },
    };
    expect(reload(withHead).lmHead.data.every((v) => v === 0)).toBe(true);
    const untiedConfig = { ...config, tieEmbeddings: false };
    expect(() => reload(weightsToTensors(config, weights), 'F32', untiedConfig)).toThrow(
      /missing tensor lm_head\.weight/,
    );
    const untied = tinyModel({ untied: true, seed: 4 });
    const head = reload(weightsToTensors(untied.config, untied.weights), 'F32', untied.config);
    expect(head.lmHead).not.toBe(head.embedding);
    expect(head.lmHead.data).toEqual(untied.weights.lmHead.data);
  });

  it('requires the projection biases when use_bias is set', () => {
    const biased = tinyModel({ biases: true, seed: 4 });
    const tensors = weightsToTensors(biased.config, biased.weights);
    expect(reload(tensors, 'F32', biased.config).layers[0]!.inProjBias).not.toBeNull();
    delete tensors['backbone.layers.0.mixer.out_proj.bias'];
    expect(() => reload(tensors, 'F32', biased.config)).toThrow('missing tensor backbone.layers.0.mixer.out_proj.bias');
  });
});

describe('config.json', () => {
  it('reads HF names', () => {
    const c = parseConfig({
      model_type: 'mamba',
      hidden_size: 768,
      num_hidden_layers: 24,
      state_size: 16,
      conv_kernel: 4,
      expand: 2,
      time_step_rank: 48,
      vocab_size: 50280,
      layer_norm_epsilon: 1e-5,
      use_bias: false,
      use_conv_bias: true,
      residual_in_fp32: true,
      tie_word_embeddings: true,
      pad_vocab_size_multiple: 8,
      initializer_range: 0.1,
      time_step_min: 0.001,
    });
    expect(c).toMatchObject({
      dModel: 768,
      nLayer: 24,
      dState: 16,
      dConv: 4,
      dInner: 1536,
      dtRank: 48,
      vocabSize: 50280,
      tieEmbeddings: true,
    });
  });

  it('reads mamba_ssm names, dt_rank "auto" and pads the vocabulary', () => {
    const c = parseConfig({
      d_model: 1000,
      n_layer: 48,
      vocab_size: 50277,
      ssm_cfg: { dt_rank: 'auto', d_state: 8 },
      rms_norm: true,
      residual_in_fp32: true,
      fused_add_norm: true,
      pad_vocab_size_multiple: 8,
      tie_embeddings: false,
    });
    expect(c).toMatchObject({
      dModel: 1000,
      nLayer: 48,
      dtRank: 63,
      dState: 8,
      dConv: 4,
      expand: 2,
      vocabSize: 50280,
      tieEmbeddings: false,
    });
    expect(parseConfig({ d_model: 64, n_layer: 2, vocab_size: 301, pad_vocab_size_multiple: 16 }).vocabSize).toBe(304);
  });

  it('names the field that is invalid, missing or contradictory', () => {
    expect(() => parseConfig({ hidden_size: 'big', num_hidden_layers: 2, vocab_size: 10 })).toThrow(
      /invalid config field hidden_size/,
    );
    expect(() => parseConfig({ d_model: 8, n_layer: 2, vocab_size: 10, ssm_cfg: { dt_rank: 'sometimes' } })).toThrow(
      /ssm_cfg\.dt_rank/,
    );
    expect(() => parseConfig({ d_model: 8, n_layer: 2 })).toThrow(/vocab_size/);
    expect(() => parseConfig({ d_model: 8, vocab_size: 10 })).toThrow(/missing config field num_hidden_layers/);
    expect(() => parseConfig({ model_type: 'mamba2', d_model: 8, n_layer: 2, vocab_size: 10 })).toThrow(/model_type/);
    expect(() => parseConfig({ d_model: 8, n_layer: 2, vocab_size: 10, rms_norm: false })).toThrow(/rms_norm/);
    expect(() => parseConfig({ d_model: 8, hidden_size: 16, n_layer: 2, vocab_size: 10 })).toThrow(
      /hidden_size \(16\) and d_model \(8\)/,
    );
    expect(() => parseConfig('nope')).toThrow(/invalid config field \(root\)/);
  });
});

describe('checkpoint folders', () => {
  it('writes and loads a random checkpoint with a working tokenizer, deterministically', async () => {
    const a = scratch();
    const b = scratch();
    await writeRandomCheckpoint(a, { dModel: 16, nLayer: 2, dState: 4, seed: 3 });
    await writeRandomCheckpoint(b, { dModel: 16, nLayer: 2, dState: 4, seed: 3 });
    expect(readFileSync(join(a, 'model.safetensors')).equals(readFileSync(join(b, 'model.safetensors')))).toBe(true);
    const ckpt = await loadCheckpoint(a);
    expect(JSON.parse(readFileSync(join(a, 'config.json'), 'utf8')).model_type).toBe('mamba');
    expect(ckpt.config).toMatchObject({ dModel: 16, nLayer: 2, dState: 4, vocabSize: 304 });
    const text = 'The pass key is 71432. Remember it!\n';
    expect(ckpt.tokenizer.decode(ckpt.tokenizer.encode(text))).toBe(text);
    expect(ckpt.tokenizer.encode(' the')).toHaveLength(1); // merges apply
    expect(ckpt.tokenizer.eosId).toBe(0);
    expect(ckpt.weights.layers[0]!.aLog.data.slice(0, 4)).toEqual(
      Float32Array.from([0, Math.log(2), Math.log(3), Math.log(4)]),
    );
  });

  it('loads sharded checkpoints through model.safetensors.index.json', async () => {
    const { config, weights, engine } = tinyModel({ seed: 12 });
    const dir = scratch();
    const tensors = weightsToTensors(config, weights);
    const names = Object.keys(tensors);
    const half = Math.ceil(names.length / 2);
    const shards = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    shards.forEach((group, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeFileSync(join(dir, file), writeSafetensors(Object.fromEntries(group.map((n) => [n, tensors[n]!]))));
      group.forEach((n) => (weightMap[n] = file));
    });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfigJson(config)));
    const model = await loadModel(dir);
    const ids = randomIds(5, config.vocabSize, 1);
    expect((await new ReferenceEngine(model.config, model.weights).prefill(ids)).logits[0]).toEqual(
      (await engine.prefill(ids)).logits[0],
    );
  });

  it('reports the file and the problem', async () => {
    const dir = scratch();
    await expect(loadModel(dir)).rejects.toThrow(/config\.json: cannot read|cannot read .*config\.json/);
    writeFileSync(join(dir, 'config.json'), '{"d_model": 8, "n_layer": "two", "vocab_size": 10}');
    await expect(loadModel(dir)).rejects.toThrow(/config\.json: invalid config field n_layer/);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfigJson(tinyModel().config)));
    await expect(loadModel(dir)).rejects.toThrow(/no model\.safetensors/);
    const bad = weightsToTensors(tinyModel().config, randomWeights(tinyModel().config, 1));
    delete bad['backbone.norm_f.weight'];
    writeFileSync(join(dir, 'model.safetensors'), writeSafetensors(bad));
    await expect(loadModel(dir)).rejects.toThrow(/model\.safetensors: missing tensor backbone\.norm_f\.weight/);
  });
});
