// Node: the decode-step module from dist/wasm/mamba-step.wasm, compiled once per process (built first when missing
// or stale, which needs the assemblyscript devDependency). workerd imports the same file as a module instead.
import { readFile } from 'node:fs/promises';
import type { MambaConfig, MambaWeights } from '../engine.ts';
import { buildStepWasm } from './build.ts';
import { WasmEngine, type WasmEngineOptions } from './engine.ts';

let compiled: Promise<WebAssembly.Module> | null = null;

export function stepWasmModule(): Promise<WebAssembly.Module> {
  compiled ??= buildStepWasm()
    .then(({ path }) => readFile(path))
    .then((bytes) => WebAssembly.compile(new Uint8Array(bytes)));
  compiled.catch(() => (compiled = null));
  return compiled;
}

export async function createWasmEngineNode(
  config: MambaConfig,
  weights: MambaWeights,
  options: WasmEngineOptions = {},
): Promise<WasmEngine> {
  return WasmEngine.create(await stepWasmModule(), config, weights, options);
}
