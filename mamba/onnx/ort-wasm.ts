// Starts onnxruntime-web's WASM backend from an already compiled WebAssembly.Module, the same way in Node and in
// workerd. workerd forbids compiling wasm from bytes at run time, so (see shared/notes/ort-in-workerd.md):
// give ORT a recognisable placeholder as `wasmBinary` (so it skips fetching and uses its bundled emscripten loader),
// and wrap WebAssembly.instantiate so that the one call on those placeholder bytes instantiates our Module instead.
import * as ort from 'onnxruntime-web/wasm';

export { ort };

const PLACEHOLDER = new TextEncoder().encode('deciserve:ort-wasm-placeholder');

let ready: Promise<void> | null = null;
let memory: WebAssembly.Memory | null = null;

function isPlaceholder(bytes: unknown): boolean {
  let view: Uint8Array;
  if (bytes instanceof Uint8Array) view = bytes;
  else if (bytes instanceof ArrayBuffer) view = new Uint8Array(bytes);
  else return false;
  if (view.byteLength !== PLACEHOLDER.byteLength) return false;
  return view.every((b, i) => b === PLACEHOLDER[i]);
}

/**
 * Initialises ORT once per isolate/process. `wasm` is onnxruntime-web/ort-wasm-simd-threaded.wasm as a Module
 * (workerd: the module import; Node: WebAssembly.compile of the file). Later calls reuse the first initialisation.
 */
export function initOrt(wasm: WebAssembly.Module): Promise<void> {
  ready ??= (async () => {
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.proxy = false;
    ort.env.wasm.wasmBinary = PLACEHOLDER.slice();
    ort.env.logLevel = 'error';
    const original = WebAssembly.instantiate;
    const patched = async (source: unknown, imports?: WebAssembly.Imports) => {
      if (isPlaceholder(source)) {
        const instance = await original(wasm, imports);
        // The threaded build imports its memory; other builds export it.
        const candidates = [
          ...Object.values(instance.exports),
          ...Object.values(imports ?? {}).flatMap((m) => Object.values(m)),
        ];
        memory = (candidates.find((v) => v instanceof WebAssembly.Memory) as WebAssembly.Memory | undefined) ?? null;
        return { instance, module: wasm };
      }
      return (original as (s: unknown, i?: WebAssembly.Imports) => Promise<unknown>)(source, imports);
    };
    (WebAssembly as { instantiate: unknown }).instantiate = patched;
    try {
      // A throwaway session forces the backend to load now, while the patch is in place.
      await ort.InferenceSession.create(TINY_MODEL).then((s) => s.release());
    } finally {
      (WebAssembly as { instantiate: unknown }).instantiate = original;
    }
  })();
  return ready;
}

/** Bytes of ORT's wasm linear memory (it only grows): the engine's peak native memory. */
export function ortWasmMemoryBytes(): number {
  return memory ? memory.buffer.byteLength : 0;
}

/** An Identity model (x [1] float → y), encoded once with onnx-proto so the runtime does not need it. */
const TINY_MODEL = Uint8Array.from(
  atob(
    'CAgSCWRlY2lzZXJ2ZRoFMC4xLjAyADo3ChAKAXgSAXkiCElkZW50aXR5EgFnWg8KAXgSCgoICAESBAoCCAFiDwoBeRIKCggIARIECgIIAUIECgAQEQ==',
  )
    .split('')
    .map((ch) => ch.charCodeAt(0)),
);
