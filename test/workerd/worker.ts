// A minimal Worker around OnnxEngine, used by the workerd test and the benchmark (the edge API lives in worker/).
// The exported graphs come from the MODEL assets binding; ORT's wasm is a module import compiled at upload time.
import wasm from 'onnxruntime-web/ort-wasm-simd-threaded.wasm';
import type { DecimationConfig, PrefillOptions } from '../../mamba/engine.ts';
import { generate } from '../../mamba/generate.ts';
import { loadWorkerEngine, ortWasmMemoryBytes, type ModelFetcher } from '../../mamba/onnx/worker-loader.ts';

export interface Env {
  MODEL: ModelFetcher;
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
        const result = await generate(engine, null, body.ids, {
          maxTokens: body.maxTokens ?? 16,
          decimation: body.decimation,
          protect: body.protect,
        });
        return json({ tokens: result.tokens, kept: result.kept, coldStartMs, wasmMemoryBytes: ortWasmMemoryBytes() });
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
          wasmMemoryBytes: ortWasmMemoryBytes(),
          quantization: engine.manifest.quantization,
        });
      return json({ error: 'not found' }, 404);
    } catch (err) {
      return json({ error: (err as Error).message }, 400);
    }
  },
};
