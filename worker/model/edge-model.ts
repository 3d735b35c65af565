// The model the edge serves, read through a ModelFetcher (the Worker's assets binding, or a folder on Node): the
// ONNX export (manifest.json + graph), tokenizer.json and the checkpoint's deciserve.json (training length and
// DeciMamba defaults). The tokenizer is loaded at once (every request counts tokens); the ONNX engine only when a
// request runs at the edge, then once per isolate/process (mamba/onnx/worker-loader.ts caches it).
import type { MambaConfig } from '../../mamba/engine.ts';
import { parseManifest, type OnnxManifest } from '../../mamba/onnx/manifest.ts';
import { loadWorkerEngine, type WorkerEngine, type ModelFetcher } from '../../mamba/onnx/worker-loader.ts';
import { loadTokenizer, type TextTokenizer } from '../../mamba/tokenizer.ts';
import { modelDefaultsFromCard, type ModelDefaults } from '../../mamba/model-defaults.ts';

export type { ModelFetcher };

export interface EdgeModel {
  config: MambaConfig;
  manifest: OnnxManifest;
  tokenizer: TextTokenizer;
  defaults: ModelDefaults;
  /** The isolate's ONNX engine (loaded on first use). */
  engine(): Promise<WorkerEngine>;
}

export const MODEL_BASE_URL = 'https://model/';

async function fetchJson(files: ModelFetcher, name: string, optional = false): Promise<unknown> {
  const response = await files.fetch(MODEL_BASE_URL + name);
  if (optional && response.status === 404) return null;
  if (!response.ok) throw new Error(`model file ${name}: HTTP ${response.status}`);
  return response.json();
}

/** Opens the model on first use and shares it; a failed open is forgotten so the next request tries again. */
export function lazyEdgeModel(open: () => Promise<EdgeModel>): () => Promise<EdgeModel> {
  let model: Promise<EdgeModel> | null = null;
  return () => {
    model ??= open();
    model.catch(() => (model = null));
    return model;
  };
}

export async function openEdgeModel(files: ModelFetcher, wasm: WebAssembly.Module): Promise<EdgeModel> {
  const [manifestJson, tokenizerJson, card] = await Promise.all([
    fetchJson(files, 'manifest.json'),
    fetchJson(files, 'tokenizer.json'),
    fetchJson(files, 'deciserve.json', true),
  ]);
  const manifest = parseManifest(manifestJson);
  return {
    config: manifest.config,
    manifest,
    tokenizer: loadTokenizer(tokenizerJson),
    defaults: modelDefaultsFromCard(card, manifest.config.nLayer),
    engine: () => loadWorkerEngine(files, wasm, MODEL_BASE_URL),
  };
}
