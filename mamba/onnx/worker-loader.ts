// Loading an OnnxEngine inside a Worker (workerd): graph bytes come from a binding (static assets, R2, ...) so they
// are not part of the script, and ORT's wasm arrives as a module import (compiled at upload time). The engine is
// created once per isolate and reused by every request.
import { OnnxEngine } from './engine.ts';
import { parseManifest } from './manifest.ts';
import { initOrt, ort, ortWasmMemoryBytes } from './ort-wasm.ts';

/** Anything with fetch(): an assets binding, a service binding, or a wrapper over R2. */
export interface ModelFetcher {
  fetch(input: string): Promise<Response>;
}

export interface WorkerEngine {
  engine: OnnxEngine;
  /** Time to fetch the graphs, start ORT (first time in the isolate) and create the sessions. */
  coldStartMs: number;
}

const cache = new Map<string, Promise<WorkerEngine>>();

async function fetchBytes(fetcher: ModelFetcher, url: string): Promise<Uint8Array> {
  const response = await fetcher.fetch(url);
  if (!response.ok) throw new Error(`model file ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * The isolate's engine for the export under `baseUrl` (e.g. 'https://model/' for an assets binding whose folder
 * holds manifest.json and mamba.onnx). A failed load is not cached, so a later request retries.
 */
export function loadWorkerEngine(
  fetcher: ModelFetcher,
  wasm: WebAssembly.Module,
  baseUrl = 'https://model/',
): Promise<WorkerEngine> {
  let entry = cache.get(baseUrl);
  if (!entry) {
    entry = (async () => {
      const t0 = performance.now();
      const manifest = parseManifest(
        JSON.parse(new TextDecoder().decode(await fetchBytes(fetcher, `${baseUrl}manifest.json`))),
      );
      const [model, step] = await Promise.all([
        fetchBytes(fetcher, baseUrl + manifest.file),
        manifest.stepFile ? fetchBytes(fetcher, baseUrl + manifest.stepFile) : undefined,
      ]);
      await initOrt(wasm);
      const engine = await OnnxEngine.create(ort, { manifest, model, step });
      return { engine, coldStartMs: performance.now() - t0 };
    })();
    entry.catch(() => cache.delete(baseUrl));
    cache.set(baseUrl, entry);
  }
  return entry;
}

export { ortWasmMemoryBytes };
