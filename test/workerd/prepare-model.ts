// Writes the workerd harness's model: a tiny random checkpoint and its ONNX export, into the assets folder named
// in wrangler.toml. Deterministic, so every run tests the same model.
import { mkdir, rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { exportMambaOnnx, type ExportOptions } from '../../mamba/onnx/export/export-model.ts';
import { writeOnnxExport } from '../../mamba/onnx/node.ts';
import { randomConfig, randomWeights, writeRandomCheckpoint } from '../../mamba/random-checkpoint.ts';

export const WORKERD_MODEL_DIR = resolve(import.meta.dirname, '../.tmp/workerd-model');
export const WORKERD_MODEL = { dModel: 32, nLayer: 3, vocabSize: 512, seed: 7 };

export async function prepareWorkerdModel(dir = WORKERD_MODEL_DIR, exportOptions: ExportOptions = {}): Promise<string> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await writeRandomCheckpoint(dir, WORKERD_MODEL);
  const config = randomConfig(WORKERD_MODEL);
  await writeOnnxExport(dir, exportMambaOnnx(config, randomWeights(config, WORKERD_MODEL.seed), exportOptions));
  return dir;
}
