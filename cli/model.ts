// Finding and opening the model a command runs on (--model, default models/deciserve-mamba), plus shared flags.
import { existsSync, statSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadCheckpoint, loadFolderTokenizer, readModelDefaults, type Checkpoint } from '../mamba/checkpoint.ts';
import type { ModelDefaults } from '../mamba/model-defaults.ts';
import { decimationForLength, defaultDecimation, validateDecimation } from '../mamba/decimation.ts';
import type { DecimationConfig, MambaEngine } from '../mamba/engine.ts';
import { createEngine } from './engines.ts';
import { UsageError, type OptionSpec, type ParsedValues } from './registry.ts';
import { floatValue, intValue, listValue, stringValue } from './values.ts';

export const DEFAULT_MODEL_DIR = 'models/deciserve-mamba';
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const modelOptions: Record<string, OptionSpec> = {
  model: {
    type: 'string',
    short: 'm',
    value: '<dir>',
    description: `checkpoint folder (default: ${DEFAULT_MODEL_DIR} if it exists)`,
  },
  engine: {
    type: 'string',
    value: '<name>',
    description: 'engine to run (default: reference; an export-onnx folder as --model runs its own graph)',
  },
};

export const decimationOptions: Record<string, OptionSpec> = {
  'decimation-layers': {
    type: 'string',
    value: '<list>',
    description: "DeciMamba decimating layers, e.g. 12 or 8,16 (default: the model's deciserve.json, else n_layer/2)",
  },
  // No defaults here: unset flags fall back to the model's deciserve.json (what the edge and the runner use).
  beta: {
    type: 'string',
    value: '<x>',
    description:
      "DeciMamba β: K shrinks by β per decimating layer (default: the model's deciserve.json, else the built-in default)",
  },
  'l-base': {
    type: 'string',
    value: '<n>',
    description:
      "DeciMamba L_base: tokens kept at the first decimating layer (default: the model's deciserve.json, else the built-in default)",
  },
  'min-seq-len': {
    type: 'string',
    value: '<n>',
    description: "DeciMamba floor on tokens kept (default: the model's deciserve.json, else the built-in default)",
  },
};

export const jsonOption: Record<string, OptionSpec> = {
  json: {
    type: 'string',
    value: '<file>',
    description: "also write the result as JSON to <file> ('-' for stdout only)",
  },
};

/** The --model folder, or the default one, checked to look like a checkpoint. */
export function resolveModelDir(flag: string | undefined): string {
  if (flag !== undefined) {
    if (!existsSync(flag) || !statSync(flag).isDirectory()) throw new UsageError(`--model ${flag}: no such folder`);
    if (!existsSync(join(flag, 'config.json')))
      throw new UsageError(`--model ${flag}: not a checkpoint (no config.json)`);
    return flag;
  }
  // DECISERVE_MODEL replaces the built-in default (e.g. a model kept outside the checkout).
  const fromEnv = process.env.DECISERVE_MODEL;
  const candidates = fromEnv ? [resolve(fromEnv)] : [resolve(DEFAULT_MODEL_DIR), join(REPO_ROOT, DEFAULT_MODEL_DIR)];
  for (const candidate of candidates) {
    if (existsSync(join(candidate, 'config.json'))) return candidate;
  }
  throw new UsageError(
    `no model: ${fromEnv ?? DEFAULT_MODEL_DIR} does not exist; pass --model <dir>, or make a tiny one with 'deciserve random-checkpoint <dir>'`,
  );
}

/** What a command needs of its model: the weights stay with the engine (an ONNX export has them in its graph). */
export type OpenedModel = Pick<Checkpoint, 'dir' | 'config' | 'tokenizer'>;

/** An `export-onnx` folder: its manifest and graph, no safetensors. */
function isOnnxExport(dir: string): boolean {
  return (
    existsSync(join(dir, 'manifest.json')) &&
    !existsSync(join(dir, 'model.safetensors')) &&
    !existsSync(join(dir, 'model.safetensors.index.json'))
  );
}

export async function openModel(
  values: ParsedValues,
): Promise<{ checkpoint: OpenedModel; engine: MambaEngine; defaults: ModelDefaults }> {
  const dir = resolveModelDir(stringValue(values, 'model'));
  const engineName = stringValue(values, 'engine');
  if (isOnnxExport(dir)) {
    if (engineName !== undefined)
      throw new UsageError(`--model ${dir} is an ONNX export: it runs its own graph, so drop --engine ${engineName}`);
    const { createOnnxEngineNode, readOnnxExport } = await import('../mamba/onnx/node.ts');
    const exported = await readOnnxExport(dir);
    const checkpoint = { dir, config: exported.manifest.config, tokenizer: await loadFolderTokenizer(dir) };
    const engine = await createOnnxEngineNode(exported, { stepPrepack: true }); // Node: memory is not the limit
    return { checkpoint, engine, defaults: await readModelDefaults(dir, checkpoint.config.nLayer) };
  }
  const checkpoint = await loadCheckpoint(dir);
  const defaults = await readModelDefaults(dir, checkpoint.config.nLayer);
  const engine = await createEngine(engineName ?? 'reference', checkpoint);
  return { checkpoint, engine, defaults };
}

/** DeciMamba settings from the flags, starting from the model's deciserve.json (else the paper's, scaled). */
export function decimationFromFlags(
  values: ParsedValues,
  nLayer: number,
  base: DecimationConfig = defaultDecimation(nLayer),
): DecimationConfig {
  const cfg: DecimationConfig = {
    layers: listValue(values, 'decimation-layers', { integer: true, min: 0, max: nLayer - 1 }) ?? base.layers,
    beta: floatValue(values, 'beta', { min: 0, max: 1 }) ?? base.beta,
    lBase: floatValue(values, 'l-base', { min: 1 }) ?? base.lBase,
    minSeqLen: intValue(values, 'min-seq-len', { min: 0 }) ?? base.minSeqLen,
  };
  try {
    validateDecimation(cfg, nLayer);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return cfg;
}

/**
 * The --decimate / --decimation-* flags for a prompt of `length` tokens: null without --decimate (implied by
 * --decimation-layers). --l-base fixes the paper's single L_base; otherwise the model's budget for this length.
 */
export function decimationForPrompt(
  values: ParsedValues,
  nLayer: number,
  defaults: ModelDefaults,
  length: number,
): DecimationConfig | null {
  const decimate = values.decimate === true || values['decimation-layers'] !== undefined;
  if (!decimate) return null;
  const fixed = decimationFromFlags(values, nLayer, defaults.decimation);
  return decimationForLength(fixed, values['l-base'] === undefined ? defaults.lBaseByLength : undefined, length);
}

/** Writes `data` as JSON to the --json target, if any. Returns true when it went to stdout. */
export async function writeJsonOutput(values: ParsedValues, data: unknown): Promise<boolean> {
  const target = stringValue(values, 'json');
  if (target === undefined) return false;
  const text = JSON.stringify(data, (_, v) => (ArrayBuffer.isView(v) ? Array.from(v as Int32Array) : v), 2) + '\n';
  if (target === '-') {
    process.stdout.write(text);
    return true;
  }
  try {
    await writeFile(target, text);
  } catch (err) {
    throw new UsageError(
      `--json ${target}: cannot write (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  return false;
}

/** The command's text: the file named by --`flag` if given, else the positional arguments joined by spaces. */
export async function textInput(values: ParsedValues, positionals: string[], flag: string): Promise<string> {
  const path = stringValue(values, flag);
  return path !== undefined ? readTextFile(flag, path) : positionals.join(' ');
}

export async function readTextFile(flag: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new UsageError(
      `--${flag} ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
}
