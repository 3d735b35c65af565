// `deciserve export-onnx` on tiny random checkpoints: the files it writes run in onnxruntime-web like the reference,
// and bad checkpoints or flags are one-line errors naming the problem.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cliInProcess } from './cli-driver.ts';
import { loadModel } from '../mamba/checkpoint.ts';
import { createOnnxEngineNode } from '../mamba/onnx/node.ts';
import { randomConfig, randomWeights, weightsToTensors, writeRandomCheckpoint } from '../mamba/random-checkpoint.ts';
import { ReferenceEngine } from '../mamba/reference/index.ts';
import { writeSafetensors } from '../mamba/safetensors.ts';
import { maxAbsDiff, randomIds, tempDir } from './helpers.ts';

const cli = cliInProcess;

async function expectUserError(args: string[], pattern: RegExp) {
  const r = await cli(args);
  expect(r.code).toBe(2);
  expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
}

const OPTS = { dModel: 32, nLayer: 2, seed: 4 };
let work: string;
let checkpoint: string;

beforeAll(async () => {
  work = tempDir('deciserve-onnx-cli-');
  checkpoint = (await writeRandomCheckpoint(join(work, 'ckpt'), OPTS)).dir;
});

describe('deciserve export-onnx', () => {
  it('exports a checkpoint whose graphs match the reference', async () => {
    const out = join(work, 'onnx');
    const r = await cli(['export-onnx', checkpoint, '--out', out, '--decimation', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/mamba\.onnx .* MiB; quantization none; decimation at layers \[1\]/);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(manifest.decimationLayers).toEqual([1]);
    readFileSync(join(out, 'tokenizer.json')); // travels with the graphs

    const engine = await createOnnxEngineNode(out);
    const ref = ReferenceEngine.fromCheckpoint(await loadModel(checkpoint));
    const ids = randomIds(50, ref.config.vocabSize, 2);
    const options = { decimation: { layers: [1], beta: 0.5, lBase: 16, minSeqLen: 4 }, protect: 3 };
    const [a, b] = [await ref.prefill(ids, options), await engine.prefill(ids, options)];
    expect(maxAbsDiff(a.logits[0]!, b.logits[0]!)).toBeLessThanOrEqual(1e-4);
    expect(b.kept.map((k) => Array.from(k.indices))).toEqual(a.kept.map((k) => Array.from(k.indices)));
  });

  it('runs an export folder as --model, with the same text as the in-memory onnx engine', async () => {
    const out = join(work, 'as-model');
    writeFileSync(
      join(checkpoint, 'deciserve.json'),
      JSON.stringify({ trainingLength: 64, decimation: { layers: [1], beta: 0.5, lBase: 5, minSeqLen: 1 } }),
    );
    expect((await cli(['export-onnx', checkpoint, '--out', out])).code).toBe(0);
    const args = ['generate', '-n', '5', '--decimate', '--json', '-', 'The quick brown fox jumps over the lazy dog'];
    const fromExport = await cli(['generate', '--model', out, ...args.slice(1)]);
    expect(fromExport.code, fromExport.stderr).toBe(0);
    const inMemory = JSON.parse(
      (await cli(['generate', '--model', checkpoint, '--engine', 'onnx', ...args.slice(1)])).stdout,
    );
    const exported = JSON.parse(fromExport.stdout);
    expect(exported.tokens).toEqual(inMemory.tokens);
    expect(exported.decimation).toEqual({ layers: [1], beta: 0.5, lBase: 5, minSeqLen: 1 }); // deciserve.json came along
    await expectUserError(
      ['generate', '--model', out, '--engine', 'reference', 'x'],
      /is an ONNX export: it runs its own graph/,
    );
  });

  it('writes int8 and int4 exports smaller than fp32', async () => {
    const sizes: Record<string, number> = {};
    for (const q of ['none', 'int8', 'int4']) {
      const out = join(work, `q-${q}`);
      expect((await cli(['export-onnx', checkpoint, '--out', out, '--quantize', q, '--decimation', 'none'])).code).toBe(
        0,
      );
      sizes[q] = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')).bytes;
    }
    expect(sizes.int8!).toBeLessThan(sizes.none!);
    expect(sizes.int4!).toBeLessThan(sizes.int8!);
  });

  it('rejects bad flags and refuses to overwrite', async () => {
    await expectUserError(['export-onnx', checkpoint], /--out <dir> is required/);
    await expectUserError(
      ['export-onnx', checkpoint, '--out', join(work, 'x'), '--quantize', 'int3'],
      /unknown --quantize 'int3'/,
    );
    await expectUserError(
      ['export-onnx', checkpoint, '--out', join(work, 'x'), '--decimation', '9'],
      /--decimation must be in \[0, 1\], got 9/,
    );
    await expectUserError(['export-onnx', checkpoint, '--out', join(work, 'onnx')], /already holds an export/);
  });

  it('names a missing tensor and an unknown config value', async () => {
    const config = randomConfig(OPTS);
    const tensors = weightsToTensors(config, randomWeights(config, OPTS.seed));
    delete tensors['backbone.layers.1.mixer.dt_proj.bias'];
    const broken = (await writeRandomCheckpoint(join(work, 'missing'), OPTS)).dir;
    writeFileSync(join(broken, 'model.safetensors'), writeSafetensors(tensors, 'F32'));
    await expectUserError(
      ['export-onnx', broken, '--out', join(work, 'y')],
      /backbone\.layers\.1\.mixer\.dt_proj\.bias/,
    );

    const badConfig = (await writeRandomCheckpoint(join(work, 'badcfg'), OPTS)).dir;
    const json = JSON.parse(readFileSync(join(badConfig, 'config.json'), 'utf8'));
    writeFileSync(join(badConfig, 'config.json'), JSON.stringify({ ...json, state_size: 'sixteen' }));
    await expectUserError(['export-onnx', badConfig, '--out', join(work, 'z')], /state_size/);
  });

  it('refuses a prompt over --max-seq-len at run time', async () => {
    const out = join(work, 'short');
    expect((await cli(['export-onnx', checkpoint, '--out', out, '--max-seq-len', '16'])).code).toBe(0);
    const engine = await createOnnxEngineNode(out);
    await expect(engine.prefill(new Array(17).fill(3))).rejects.toThrow(/17 tokens, over the configured maximum of 16/);
  });
});
