// Builds the folder the edge serves its model from (wrangler.toml's [assets] directory, or MODEL_DIR on Node):
// the ONNX export of a checkpoint plus its tokenizer.json, config.json and deciserve.json. Skips the export when
// the folder was built from the same inputs (a content hash in build.json).
//
//   npx tsx worker/model/build.ts [--checkpoint models/deciserve-mamba] [--out dist/edge-model] [--quantize none]
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { scriptArgs } from '../../mamba/script-args.ts';
import { loadCheckpoint } from '../../mamba/checkpoint.ts';
import { exportMambaOnnx } from '../../mamba/onnx/export/export-model.ts';
import { QUANTIZATIONS, type Quantization } from '../../mamba/onnx/export/layers.ts';
import { writeOnnxExport } from '../../mamba/onnx/node.ts';
import { buildStepWasm } from '../../mamba/wasm/build.ts';

export const REPO = resolve(import.meta.dirname, '../..');
export const DEFAULT_CHECKPOINT = join(REPO, 'models/deciserve-mamba');
/** 2: fp32 GEMM weights stored transposed (#16). 3: model.safetensors copied for the WASM decode step. */
const EXPORT_REVISION = 3;
export const DEFAULT_EDGE_MODEL_DIR = join(REPO, 'dist/edge-model');
// model.safetensors: the WASM SIMD decode step's weights (mamba/wasm; 12.6 MB in F16, read once per isolate).
const COPIED = ['tokenizer.json', 'config.json', 'deciserve.json', 'model.safetensors'];

export interface BuildOptions {
  checkpoint?: string;
  out?: string;
  quantization?: Quantization;
  /** Longest prompt the graph accepts; the edge only runs prompts up to the training length. */
  maxSeqLen?: number;
}

async function inputHash(checkpoint: string, options: object): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify(options));
  for (const name of new Set(['model.safetensors', ...COPIED])) {
    hash.update(name).update(await readFile(join(checkpoint, name)).catch(() => Buffer.alloc(0)));
  }
  return hash.digest('hex');
}

/** Returns the folder; `built` is false when it was already up to date. */
export async function buildEdgeModel(options: BuildOptions = {}): Promise<{ dir: string; built: boolean }> {
  const checkpoint = resolve(options.checkpoint ?? DEFAULT_CHECKPOINT);
  const out = resolve(options.out ?? DEFAULT_EDGE_MODEL_DIR);
  // The Worker imports dist/wasm/mamba-step.wasm as a module: everything that builds the model folder for wrangler
  // (the stack, the tests, `npm run edge:model`) builds it too.
  await buildStepWasm();
  // No lean step graph at the edge yet: its second session holds the weights again (+31 MiB of wasm heap in fp32),
  // too much under a Worker's 128 MB; decoding there runs through the main graph's If (#16).
  const settings = {
    quantization: options.quantization ?? 'none',
    maxSeqLen: options.maxSeqLen ?? 16_384,
    leanStep: false,
  };
  // EXPORT_REVISION: bumped when the exporter's output changes, so an old build is not reused.
  const hash = await inputHash(checkpoint, { ...settings, exportRevision: EXPORT_REVISION });
  const previous = await readFile(join(out, 'build.json'), 'utf8').then(
    (t) => JSON.parse(t) as { hash?: string },
    () => null,
  );
  if (previous?.hash === hash) return { dir: out, built: false };

  const { config, weights } = await loadCheckpoint(checkpoint);
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  await writeOnnxExport(out, exportMambaOnnx(config, weights, settings));
  for (const name of COPIED) await copyFile(join(checkpoint, name), join(out, name)).catch(() => undefined);
  await writeFile(
    join(out, 'build.json'),
    JSON.stringify({ hash, checkpoint: relative(REPO, checkpoint), ...settings }, null, 2),
  );
  return { dir: out, built: true };
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const values = scriptArgs(
    'npx tsx worker/model/build.ts [options]\nBuilds the edge model folder (ONNX export + tokenizer, config, ' +
      `weights) from a checkpoint; skips the export when it is up to date. --quantize: ${QUANTIZATIONS.join(', ')}.`,
    {
      checkpoint: { type: 'string', default: DEFAULT_CHECKPOINT },
      out: { type: 'string', default: DEFAULT_EDGE_MODEL_DIR },
      quantize: { type: 'string', default: 'none' },
    },
  );
  const quantization = values.quantize as Quantization;
  if (!QUANTIZATIONS.includes(quantization)) throw new Error(`--quantize must be one of ${QUANTIZATIONS.join(', ')}`);
  const began = performance.now();
  const { dir, built } = await buildEdgeModel({ checkpoint: values.checkpoint, out: values.out, quantization });
  console.log(`${built ? 'built' : 'up to date:'} ${dir} (${((performance.now() - began) / 1000).toFixed(1)} s)`);
}
