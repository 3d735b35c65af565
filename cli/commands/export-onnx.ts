// `deciserve export-onnx`: a checkpoint → ONNX graphs for onnxruntime(-web). Also registers the `onnx` engines
// (export in memory, run in onnxruntime-web WASM) so generate/score/passkey can use --engine onnx[-int8|-int4].
import { copyFile, readdir, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint, type Checkpoint } from '../../mamba/checkpoint.ts';
import { exportMambaOnnx, ExportError, modelBytes, type ExportOptions } from '../../mamba/onnx/export/export-model.ts';
import { QUANTIZATIONS, type Quantization } from '../../mamba/onnx/export/layers.ts';
import { createOnnxEngineNode, writeOnnxExport } from '../../mamba/onnx/node.ts';
import { registerEngine } from '../engines.ts';
import { resolveModelDir } from '../model.ts';
import { registerCommand, UsageError } from '../registry.ts';
import { intValue, listValue, stringValue } from '../values.ts';

/** --decimation all | none | <layer list>: which layers get a run-time switchable decimation block. */
function decimationLayers(text: string | undefined, nLayer: number): number[] | undefined {
  if (text === undefined || text === 'all') return undefined;
  if (text === 'none') return [];
  return listValue({ decimation: text }, 'decimation', { integer: true, min: 0, max: nLayer - 1 });
}

function exportFrom(checkpoint: Checkpoint, options: ExportOptions) {
  try {
    return exportMambaOnnx(checkpoint.config, checkpoint.weights, options);
  } catch (err) {
    if (err instanceof ExportError) throw new UsageError(`export-onnx: ${err.message}`);
    throw err;
  }
}

async function openCheckpoint(dir: string): Promise<Checkpoint> {
  try {
    return await loadCheckpoint(dir);
  } catch (err) {
    // Config, tensor and tokenizer problems are the user's checkpoint, not a crash: one line, exit 2.
    throw new UsageError(`export-onnx: ${(err as Error).message}`);
  }
}

registerCommand({
  name: 'export-onnx',
  summary:
    'Export a Mamba-1 checkpoint to ONNX (prefill and step in one graph, DeciMamba in the graph) for onnxruntime-web.',
  usage: 'export-onnx [options] <checkpoint>',
  options: {
    out: { type: 'string', short: 'o', value: '<dir>', description: 'output folder (manifest.json, mamba.onnx)' },
    quantize: {
      type: 'string',
      value: '<q>',
      description:
        'weights: none (fp32), int8 (per-channel int8 weights, fp32 activations), int8-dynamic (also int8 activations: faster, less accurate) or int4 (MatMulNBits, block 32)',
      default: 'none',
    },
    decimation: {
      type: 'string',
      value: '<layers>',
      description: 'layers that can decimate at run time: all, none, or a list like 5,7',
      default: 'all',
    },
    'max-seq-len': { type: 'string', value: '<n>', description: 'longest prompt the engine accepts', default: '16384' },
    force: { type: 'boolean', description: 'overwrite an existing export in --out' },
  },
  details: 'Example: deciserve export-onnx models/deciserve-mamba --out dist/edge-model --quantize int8',
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError('export-onnx: give exactly one checkpoint folder');
    const out = stringValue(values, 'out');
    if (!out) throw new UsageError('export-onnx: --out <dir> is required');
    if (existsSync(join(out, 'manifest.json')) && !values.force)
      throw new UsageError(`export-onnx: ${out} already holds an export (use --force to overwrite)`);
    const quantization = (stringValue(values, 'quantize') ?? 'none') as Quantization;
    if (!QUANTIZATIONS.includes(quantization))
      throw new UsageError(`export-onnx: unknown --quantize '${quantization}' (${QUANTIZATIONS.join(', ')})`);
    const dir = resolveModelDir(positionals[0]);
    const checkpoint = await openCheckpoint(dir);
    const began = performance.now();
    const exported = exportFrom(checkpoint, {
      quantization,
      decimationLayers: decimationLayers(stringValue(values, 'decimation'), checkpoint.config.nLayer),
      maxSeqLen: intValue(values, 'max-seq-len', { min: 1 }),
    });
    await writeOnnxExport(out, exported);
    // The tokenizer, serving defaults (and haystack for passkey runs) travel with the graphs, so the folder is
    // self-contained: any command takes it as --model.
    for (const name of await readdir(dir)) {
      if (/^(tokenizer.*\.json|config\.json|haystack\.txt|deciserve\.json)$/.test(name))
        await copyFile(join(dir, name), join(out, name));
    }
    const m = exported.manifest;
    const size = `${m.file} ${((await stat(join(out, m.file))).size / 2 ** 20).toFixed(2)} MiB`;
    process.stdout.write(
      `wrote ${out}: ${size}; quantization ${m.quantization}; decimation at layers [${m.decimationLayers}]; ` +
        `max ${m.maxSeqLen} tokens (${((performance.now() - began) / 1000).toFixed(1)} s)\n`,
    );
  },
});

for (const quantization of QUANTIZATIONS) {
  registerEngine(quantization === 'none' ? 'onnx' : `onnx-${quantization}`, async (checkpoint) =>
    createOnnxEngineNode(modelBytes(exportFrom(checkpoint, { quantization }))),
  );
}
