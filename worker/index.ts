// The edge API as a Cloudflare Worker. Bindings (wrangler.toml): MODEL, the static-assets folder holding the ONNX
// export, tokenizer and deciserve.json (private: run_worker_first); RATE_LIMITER, the Workers rate-limit binding;
// vars and secrets as in worker/config.ts. ORT's wasm is a module import, compiled at upload time (workerd cannot
// compile wasm from bytes at run time). The app and the model are built once per isolate.
import wasm from 'onnxruntime-web/ort-wasm-simd-threaded.wasm';
// mamba/wasm's SIMD engine (prefill and decode), compiled by worker/model/build.ts before wrangler bundles (not committed).
import stepWasm from '../dist/wasm/mamba-step.wasm';
import { createEdgeApp } from './app.ts';
import { EdgeConfigError, edgeConfig } from './config.ts';
import { consoleLog, type EdgeApp } from './deps.ts';
import type { RateLimiter } from './http/rate-limit.ts';
import { edgeWasm, lazyEdgeModel, openEdgeModel, type ModelFetcher } from './model/edge-model.ts';
import { RunnerClient } from './runner-client.ts';

export interface Env {
  MODEL: ModelFetcher;
  RATE_LIMITER?: RateLimiter;
  [name: string]: unknown;
}

let app: EdgeApp | null = null;
let configError: EdgeConfigError | null = null;

function build(env: Env): EdgeApp {
  const config = edgeConfig(env);
  return createEdgeApp({
    config,
    model: lazyEdgeModel(() => openEdgeModel(env.MODEL, wasm, edgeWasm(config.edge.engine, stepWasm))),
    runner: config.runner ? new RunnerClient(config.runner.url, config.runner.secret) : null,
    rateLimiter: env.RATE_LIMITER ?? null,
    log: consoleLog,
  });
}

export default {
  fetch(request: Request, env: Env, ctx: unknown): Response | Promise<Response> {
    if (!app && !configError) {
      try {
        app = build(env);
      } catch (err) {
        if (!(err instanceof EdgeConfigError)) throw err;
        configError = err;
      }
    }
    if (!app) {
      consoleLog.error('edge misconfigured', { error: configError!.message });
      const body = {
        error: {
          message: 'the edge API is misconfigured; see its logs',
          type: 'server_error',
          param: null,
          code: 'misconfigured',
        },
      };
      return Response.json(body, { status: 500 });
    }
    return app.fetch(request, env, ctx as never);
  },
};
