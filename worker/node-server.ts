// The edge API on Node (@hono/node-server): the same app as the Worker, the model from a folder built by
// worker/model/build.ts, ORT's wasm compiled from node_modules, an in-process rate limiter, and prompts measured on a
// worker thread (mamba/token-meter.ts).
//
//   MODEL_DIR=dist/edge-model API_KEYS=... [RUNNER_URL=... RUNNER_HMAC_SECRET=...] npx tsx worker/node-server.ts
// Settings: worker/config.ts (the same names as the Worker's vars); PORT [8787], HOST [127.0.0.1].
import { readFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { createServer } from 'node:http';
import { getRequestListener, RequestError } from '@hono/node-server';
import { badRequest } from './http/errors.ts';
import { ortWasmPath } from '../mamba/onnx/node.ts';
import { createEdgeApp } from './app.ts';
import { edgeConfig } from './config.ts';
import { consoleLog, type EdgeApp, type EdgeLog } from './deps.ts';
import { MemoryRateLimiter } from './http/rate-limit.ts';
import { DEFAULT_EDGE_MODEL_DIR } from './model/build.ts';
import { edgeWasm, lazyEdgeModel, openEdgeModel } from './model/edge-model.ts';
import { stepWasmModule } from '../mamba/wasm/node.ts';
import { folderFetcher } from './model/fs-fetcher.ts';
import { RunnerClient } from './runner-client.ts';
import { ThreadMeter } from '../mamba/token-meter.ts';

let wasm: Promise<WebAssembly.Module> | null = null;
const ortWasm = () => (wasm ??= readFile(ortWasmPath()).then((bytes) => WebAssembly.compile(new Uint8Array(bytes))));

/** The app for `env` with the model in `modelDir` (what the Worker gets from its bindings). */
export function createNodeEdgeApp(
  env: Record<string, string | undefined>,
  modelDir: string,
  log: EdgeLog = consoleLog,
): EdgeApp {
  const config = edgeConfig(env);
  return createEdgeApp({
    config,
    model: lazyEdgeModel(async () => {
      const simd = config.edge.engine === 'onnx' ? undefined : edgeWasm(config.edge.engine, await stepWasmModule());
      return openEdgeModel(folderFetcher(modelDir), await ortWasm(), simd);
    }),
    runner: config.runner ? new RunnerClient(config.runner.url, config.runner.secret) : null,
    rateLimiter: config.rateLimitPerMinute > 0 ? new MemoryRateLimiter(config.rateLimitPerMinute) : null,
    log,
    // Node has threads (workerd does not): prompts are measured off the event loop, so a bomb cannot hold /healthz.
    promptMeter: new ThreadMeter({ tokenizerPath: join(modelDir, 'tokenizer.json') }),
  });
}

export interface RunningEdge {
  url: string;
  port: number;
  close(): Promise<void>;
}

function unparsableRequest(): Response {
  const body = badRequest(
    'invalid_request_line',
    'the request URL cannot be parsed (backslashes and other characters a URL cannot hold are refused)',
  ).body();
  return new Response(JSON.stringify(body), { status: 400, headers: { 'content-type': 'application/json' } });
}

export async function startNodeEdge(opts: {
  env: Record<string, string | undefined>;
  modelDir: string;
  port?: number;
  host?: string;
  log?: EdgeLog;
}): Promise<RunningEdge> {
  const app = createNodeEdgeApp(opts.env, opts.modelDir, opts.log);
  const host = opts.host ?? '127.0.0.1';
  // getRequestListener rather than serve(): only it takes an errorHandler, and a request Node cannot turn into a
  // URL (a backslash in the path) would otherwise get an empty-body 400.
  const listener = getRequestListener(app.fetch, {
    hostname: host,
    errorHandler: (err) => (err instanceof RequestError ? unparsableRequest() : undefined),
  });
  return new Promise((resolveStart) => {
    const server = createServer(listener);
    // Requests Node's HTTP parser refuses (a request line not starting with "/", bad headers) get the JSON shape too.
    server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
      if (!socket.writable || (err as { code?: string }).code === 'ECONNRESET') return void socket.destroy();
      const body = JSON.stringify(
        badRequest('invalid_http_request', `the request could not be parsed (${err.code ?? 'bad request'})`).body(),
      );
      socket.end(
        `HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
      );
    });
    server.listen(opts.port ?? 0, host, () => {
      const info = server.address() as AddressInfo;
      resolveStart({
        url: `http://${host}:${info.port}`,
        port: info.port,
        close: () => new Promise<void>((done) => server.close(() => done())),
      });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === resolve(import.meta.filename)) {
  const modelDir = resolve(process.env.MODEL_DIR ?? DEFAULT_EDGE_MODEL_DIR);
  const edge = await startNodeEdge({
    env: process.env,
    modelDir,
    port: Number(process.env.PORT ?? 8787),
    host: process.env.HOST,
  });
  console.log(JSON.stringify({ level: 'info', msg: 'edge listening', url: edge.url, modelDir }));
  const stop = () => void edge.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
