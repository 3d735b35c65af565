// Loads a checkpoint folder (config.json, model.safetensors or sharded index, tokenizer.json) from disk.
// The pure part (tensor names and shapes) is in weights.ts, re-exported here, so the Worker can use it without node:fs.
import { readFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfig } from './config.ts';
import type { MambaConfig, MambaWeights } from './engine.ts';
import { readSafetensors } from './safetensors.ts';
import { loadTokenizer, type TextTokenizer } from './tokenizer.ts';
import { mergeSources, weightsFromSafetensors, type TensorSource } from './weights.ts';
import { modelDefaultsFromCard, type ModelDefaults } from './model-defaults.ts';

export { weightsFromSafetensors, mergeSources, WeightsError, type TensorSource } from './weights.ts';

export interface Checkpoint {
  dir: string;
  config: MambaConfig;
  weights: MambaWeights;
  tokenizer: TextTokenizer;
}

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CheckpointError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Prefixes an error's message with the file it came from, keeping it one line. */
function inFile<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw new CheckpointError(`${path}: ${(err as Error).message}`);
  }
}

async function openTensors(dir: string): Promise<{ source: TensorSource; path: string }> {
  const single = join(dir, 'model.safetensors');
  if (await exists(single)) {
    const bytes = await readFile(single);
    return { source: inFile(single, () => readSafetensors(bytes)), path: single };
  }
  const indexPath = join(dir, 'model.safetensors.index.json');
  if (await exists(indexPath)) {
    const index = (await readJson(indexPath)) as { weight_map?: Record<string, string> };
    const shards = [...new Set(Object.values(index.weight_map ?? {}))];
    if (shards.length === 0) throw new CheckpointError(`${indexPath}: empty weight_map`);
    const sources: TensorSource[] = [];
    for (const shard of shards) {
      const path = join(dir, shard);
      const bytes = await readFile(path).catch(() => {
        throw new CheckpointError(`cannot read shard ${path} named in ${indexPath}`);
      });
      sources.push(inFile(path, () => readSafetensors(bytes)));
    }
    return { source: mergeSources(sources), path: indexPath };
  }
  const hint = (await exists(join(dir, 'pytorch_model.bin')))
    ? ' (pytorch_model.bin is not supported: convert it to safetensors)'
    : '';
  throw new CheckpointError(`${dir}: no model.safetensors${hint}`);
}

/** config.json + weights, without the tokenizer (enough for an engine). */
export async function loadModel(dir: string): Promise<{ config: MambaConfig; weights: MambaWeights }> {
  const configPath = join(dir, 'config.json');
  const parsedConfig = await readJson(configPath).then((json) => inFile(configPath, () => parseConfig(json)));
  const { source, path } = await openTensors(dir);
  const weights = inFile(path, () => weightsFromSafetensors(parsedConfig, source));
  return { config: parsedConfig, weights };
}

export async function loadCheckpoint(dir: string): Promise<Checkpoint> {
  const { config, weights } = await loadModel(dir);
  return { dir, config, weights, tokenizer: await loadFolderTokenizer(dir) };
}

/** A folder's tokenizer.json (+ tokenizer_config.json when present): a checkpoint's, or an ONNX export's. */
export async function loadFolderTokenizer(dir: string): Promise<TextTokenizer> {
  const tokenizerPath = join(dir, 'tokenizer.json');
  const tokenizerJson = await readJson(tokenizerPath);
  const tokenizerConfigPath = join(dir, 'tokenizer_config.json');
  const tokenizerConfig = (await exists(tokenizerConfigPath)) ? await readJson(tokenizerConfigPath) : {};
  return inFile(tokenizerPath, () => loadTokenizer(tokenizerJson, tokenizerConfig));
}

/** The folder's deciserve.json serving defaults (mamba/model-defaults.ts), or the generic ones when absent. */
export async function readModelDefaults(
  modelDir: string,
  nLayer: number,
  trainLenOverride?: number,
): Promise<ModelDefaults> {
  const text = await readFile(join(modelDir, 'deciserve.json'), 'utf8').catch(() => null);
  return modelDefaultsFromCard(text === null ? null : JSON.parse(text), nLayer, trainLenOverride);
}
