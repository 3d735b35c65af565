// A minimal Worker around OnnxEngine, used by the workerd test and the benchmark (the edge API lives in worker/).
// The exported graphs come from the MODEL assets binding; ORT's wasm is a module import compiled at upload time.
// DECODE (a var the benchmark sets): 'wasm-fp32' | 'wasm-int8' decode on mamba/wasm's SIMD step (weights from the
// assets' model.safetensors), prefill on ORT, as the edge does; unset: ORT for both.
import wasm from 'onnxruntime-web/ort-wasm-simd-threaded.wasm';
import stepWasm from '../../dist/wasm/mamba-step.wasm';
import type { DecimationConfig, MambaEngine, PrefillOptions } from '../../mamba/engine.ts';
import { generate } from '../../mamba/generate.ts';
import { loadWorkerEngine, ortWasmMemoryBytes, type ModelFetcher } from '../../mamba/onnx/worker-loader.ts';
import { readSafetensors } from '../../mamba/safetensors.ts';
import { WasmStepEngine } from '../../mamba/wasm/engine.ts';
import { weightsFromSafetensors } from '../../mamba/weights.ts';

export interface Env {
  MODEL: ModelFetcher;
  DECODE?: string;
}

let stepEngine: Promise<WasmStepEngine> | null = null;

async function decodeEngine(env: Env, onnx: MambaEngine): Promise<MambaEngine> {
  if (env.DECODE !== 'wasm-fp32' && env.DECODE !== 'wasm-int8') return onnx;
  stepEngine ??= (async () => {
    const bytes = new Uint8Array(await (await env.MODEL.fetch('https://model/model.safetensors')).arrayBuffer());
    const weights = weightsFromSafetensors(onnx.config, readSafetensors(bytes));
    const precision = env.DECODE === 'wasm-int8' ? 'int8' : 'fp32';
    return WasmStepEngine.create(stepWasm, onnx.config, weights, { precision, prefillEngine: onnx });
  })();
  return stepEngine;
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
      const { engine, coldStartMs } = await loadWorkerEngine(env.MODEL, wasm);
      if (url.pathname === '/generate' && request.method === 'POST') {
        const body = (await request.json()) as GenerateBody;
        const result = await generate(await decodeEngine(env, engine), null, body.ids, {
          maxTokens: body.maxTokens ?? 16,
          decimation: body.decimation,
          protect: body.protect,
        });
        const stepBytes = stepEngine ? (await stepEngine).memoryBytes : 0;
        return json({
          tokens: result.tokens,
          kept: result.kept,
          coldStartMs,
          wasmMemoryBytes: ortWasmMemoryBytes() + stepBytes,
        });
      }
      if (url.pathname === '/prefill' && request.method === 'POST') {
        const body = (await request.json()) as PrefillBody;
        const result = await engine.prefill(body.ids, body.options);
        return json({ positions: result.positions, logits: result.logits, kept: result.kept });
      }
      if (url.pathname === '/health')
        return json({
          ok: true,
          coldStartMs,
          wasmMemoryBytes: ortWasmMemoryBytes() + (stepEngine ? (await stepEngine).memoryBytes : 0),
          quantization: engine.manifest.quantization,
        });
      return json({ error: 'not found' }, 404);
    } catch (err) {
      return json({ error: (err as Error).message }, 400);
    }
  },
};
