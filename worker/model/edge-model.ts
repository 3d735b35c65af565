// The model the edge serves, read through a ModelFetcher (the Worker's assets binding, or a folder on Node): the
// ONNX export (manifest.json + graph), tokenizer.json and the checkpoint's deciserve.json (training length and
// DeciMamba defaults). The tokenizer is loaded at once (every request counts tokens); the ONNX engine only when a
// request runs at the edge, then once per isolate/process (mamba/onnx/worker-loader.ts caches it).
import type { MambaConfig, MambaEngine } from '../../mamba/engine.ts';
import { parseManifest, type OnnxManifest } from '../../mamba/onnx/manifest.ts';
import { loadWorkerEngine, type ModelFetcher } from '../../mamba/onnx/worker-loader.ts';
import { readSafetensors } from '../../mamba/safetensors.ts';
import { WasmEngine, type StepPrecision } from '../../mamba/wasm/engine.ts';
import { weightsFromSafetensors } from '../../mamba/weights.ts';
import { loadTokenizer, type TextTokenizer } from '../../mamba/tokenizer.ts';
import { modelDefaultsFromCard, type ModelDefaults } from '../../mamba/model-defaults.ts';

export type { ModelFetcher };

export interface EdgeModel {
  config: MambaConfig;
  manifest: OnnxManifest;
  tokenizer: TextTokenizer;
  defaults: ModelDefaults;
  /** The isolate's engine (loaded on first use): mamba/wasm's SIMD engine, or ORT. */
  engine(): Promise<{ engine: MambaEngine; coldStartMs: number }>;
}

/** mamba/wasm's SIMD engine: its compiled module (a Worker module import) and weight precision. */
export interface EdgeWasm {
  module: WebAssembly.Module;
  precision: StepPrecision;
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

/** EDGE_ENGINE's choice (undefined: ORT). */
export function edgeWasm(engine: 'wasm-fp32' | 'wasm-int8' | 'onnx', module: WebAssembly.Module): EdgeWasm | undefined {
  return engine === 'onnx' ? undefined : { module, precision: engine === 'wasm-int8' ? 'int8' : 'fp32' };
}

/**
 * With `simd`, the WASM engine, its weights read from the folder's model.safetensors (the checkpoint's, copied by
 * worker/model/build.ts; the same numbers as the ONNX export); without it, or for a folder without that file (a
 * sharded checkpoint's), ORT's engine. Once per isolate.
 */
function edgeEngine(files: ModelFetcher, ortWasm: WebAssembly.Module, config: MambaConfig, simd?: EdgeWasm) {
  let loading: ReturnType<EdgeModel['engine']> | null = null;
  return () => {
    loading ??= (async () => {
      if (!simd) return loadWorkerEngine(files, ortWasm, MODEL_BASE_URL);
      const t0 = performance.now();
      const response = await files.fetch(`${MODEL_BASE_URL}model.safetensors`);
      if (response.status === 404) return loadWorkerEngine(files, ortWasm, MODEL_BASE_URL);
      if (!response.ok) throw new Error(`model file model.safetensors: HTTP ${response.status}`);
      const weights = weightsFromSafetensors(config, readSafetensors(new Uint8Array(await response.arrayBuffer())));
      const engine = await WasmEngine.create(simd.module, config, weights, { precision: simd.precision });
      return { engine, coldStartMs: performance.now() - t0 };
    })();
    loading.catch(() => (loading = null));
    return loading;
  };
}

export async function openEdgeModel(
  files: ModelFetcher,
  ortWasm: WebAssembly.Module,
  simd?: EdgeWasm,
): Promise<EdgeModel> {
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
    engine: edgeEngine(files, ortWasm, manifest.config, simd),
  };
}
