// Node-only helpers: read/write an export folder and start ORT from the wasm file in node_modules.
// (workerd gets the same pieces from a module import and an asset binding; see test/workerd/.)
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { OnnxEngine, type OnnxEngineOptions, type OnnxModelBytes } from './engine.ts';
import type { ExportedModel } from './export/export-model.ts';
import { parseManifest } from './manifest.ts';
import { initOrt, ort } from './ort-wasm.ts';

const require = createRequire(import.meta.url);

export function ortWasmPath(): string {
  return require.resolve('onnxruntime-web/ort-wasm-simd-threaded.wasm');
}

let compiled: Promise<WebAssembly.Module> | null = null;

/** Compiles onnxruntime-web's wasm once per process and initialises ORT with it. */
export async function initOrtNode(): Promise<void> {
  compiled ??= readFile(ortWasmPath()).then((bytes) => WebAssembly.compile(new Uint8Array(bytes)));
  await initOrt(await compiled);
}

export async function writeOnnxExport(dir: string, exported: ExportedModel): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (const [name, bytes] of exported.files) {
    await writeFile(join(dir, name), bytes);
    written.push(join(dir, name));
  }
  return written;
}

export async function readOnnxExport(dir: string): Promise<OnnxModelBytes> {
  let manifestText: string;
  try {
    manifestText = await readFile(join(dir, 'manifest.json'), 'utf8');
  } catch {
    throw new Error(`${dir} has no manifest.json: not an ONNX export (run deciserve export-onnx first)`);
  }
  const manifest = parseManifest(JSON.parse(manifestText));
  const model = new Uint8Array(await readFile(join(dir, manifest.file)));
  const step = manifest.stepFile ? new Uint8Array(await readFile(join(dir, manifest.stepFile))) : undefined;
  return { manifest, model, step };
}

/** An OnnxEngine on onnxruntime-web (WASM, one thread) in this Node process. */
export async function createOnnxEngineNode(
  model: OnnxModelBytes | string,
  options: OnnxEngineOptions = {},
): Promise<OnnxEngine> {
  await initOrtNode();
  const bytes = typeof model === 'string' ? await readOnnxExport(model) : model;
  return OnnxEngine.create(ort, bytes, options);
}
