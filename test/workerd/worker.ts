// A minimal Worker around the edge's engines, used by the workerd test and the benchmarks (the edge API lives in
// worker/). The model comes from the MODEL assets binding; the wasm modules are module imports compiled at upload time.
// ENGINE (a var the benchmarks set): 'wasm-fp32' | 'wasm-int8' run prefill and decode on mamba/wasm's SIMD engine
// (weights from the assets' model.safetensors, config from manifest.json; ORT is never loaded), as the edge does;
// unset: ORT's engine on the export.
import wasm from 'onnxruntime-web/ort-wasm-simd-threaded.wasm';
import stepWasm from '../../dist/wasm/mamba-step.wasm';
import type { DecimationConfig, MambaEngine, PrefillOptions } from '../../mamba/engine.ts';
import { generate } from '../../mamba/generate.ts';
import { parseManifest } from '../../mamba/onnx/manifest.ts';
import { loadWorkerEngine, ortWasmMemoryBytes, type ModelFetcher } from '../../mamba/onnx/worker-loader.ts';
import { readSafetensors } from '../../mamba/safetensors.ts';
import { WasmEngine } from '../../mamba/wasm/engine.ts';
import { weightsFromSafetensors } from '../../mamba/weights.ts';

export interface Env {
  MODEL: ModelFetcher;
  ENGINE?: string;
}

/**
 * A timer turn: workerd's clock only advances at I/O on Cloudflare (a timer counts), so reading performance.now()
 * after one brackets the engine's work in production as well as in `wrangler dev` (where the clock runs freely).
 */
const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

/** Runs `fn` timed inside the isolate (serverMs: the engine's work, without the HTTP round trip). */
async function timedInside<T>(fn: () => Promise<T>): Promise<{ value: T; serverMs: number }> {
  await tick();
  const t0 = performance.now();
  const value = await fn();
  await tick();
  return { value, serverMs: performance.now() - t0 };
}

let simdEngine: Promise<{ engine: WasmEngine; coldStartMs: number }> | null = null;

async function engineFor(env: Env): Promise<{ engine: MambaEngine; coldStartMs: number; quantization?: string }> {
  if (env.ENGINE !== 'wasm-fp32' && env.ENGINE !== 'wasm-int8') {
    const { engine, coldStartMs } = await loadWorkerEngine(env.MODEL, wasm);
    return { engine, coldStartMs, quantization: engine.manifest.quantization };
  }
  const precision = env.ENGINE === 'wasm-int8' ? 'int8' : 'fp32';
  simdEngine ??= (async () => {
    const t0 = performance.now();
    const { config } = parseManifest(await (await env.MODEL.fetch('https://model/manifest.json')).json());
    const bytes = new Uint8Array(await (await env.MODEL.fetch('https://model/model.safetensors')).arrayBuffer());
    const weights = weightsFromSafetensors(config, readSafetensors(bytes));
    return {
      engine: await WasmEngine.create(stepWasm, config, weights, { precision }),
      coldStartMs: performance.now() - t0,
    };
  })();
  return simdEngine;
}

/** Wasm memory of the engines this isolate loaded (a wasm heap never shrinks: its size now is its peak). */
async function wasmMemoryBytes(): Promise<number> {
  return ortWasmMemoryBytes() + (simdEngine ? (await simdEngine).engine.memoryBytes : 0);
}

interface GenerateBody {
  ids: number[];
  maxTokens?: number;
  decimation?: DecimationConfig | null;
  protect?: number;
}

interface PrefillBody {
  ids: number[];
  options?: PrefillOptions;
}

const json = (data: unknown, status = 200) =>
  new Response(
    JSON.stringify(data, (_, v) => (ArrayBuffer.isView(v) ? Array.from(v as Float32Array) : v)),
    {
      status,
      headers: { 'content-type': 'application/json' },
    },
  );

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    try {
      const { engine, coldStartMs, quantization } = await engineFor(env);
      if (url.pathname === '/generate' && request.method === 'POST') {
        const body = (await request.json()) as GenerateBody;
        const { value: result, serverMs } = await timedInside(() =>
          generate(engine, null, body.ids, {
            maxTokens: body.maxTokens ?? 16,
            decimation: body.decimation,
            protect: body.protect,
          }),
        );
        return json({
          serverMs,
          // the decode steps alone, as generate() times them (wrangler dev's clock runs freely between I/O)
          decodeMs: result.timings.decodeMs,
          tokens: result.tokens,
          kept: result.kept,
          coldStartMs,
          wasmMemoryBytes: await wasmMemoryBytes(),
        });
      }
      if (url.pathname === '/prefill' && request.method === 'POST') {
        const body = (await request.json()) as PrefillBody;
        const { value: result, serverMs } = await timedInside(() => engine.prefill(body.ids, body.options));
        return json({
          serverMs,
          positions: result.positions,
          logits: result.logits,
          kept: result.kept,
          wasmMemoryBytes: await wasmMemoryBytes(),
        });
      }
      if (url.pathname === '/health')
        return json({
          ok: true,
          coldStartMs,
          wasmMemoryBytes: await wasmMemoryBytes(),
          quantization,
        });
      return json({ error: 'not found' }, 404);
    } catch (err) {
      return json({ error: (err as Error).message }, 400);
    }
  },
};
