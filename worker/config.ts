// The edge API's settings, from Worker vars/secrets (wrangler.toml [vars], `wrangler secret put`) or process.env on
// Node. Everything is a string there, so values are coerced; a bad value is a configuration error, not a crash later.
import { z } from 'zod';
import edgeBenchWasm from '../bench/results/edge-bench.json' with { type: 'json' };
import edgeBenchOnnx from '../bench/results/edge-bench-onnx.json' with { type: 'json' };

const int = (min: number, fallback: number) => z.coerce.number().int().min(min).default(fallback);
const optionalInt = (min: number) => z.coerce.number().int().min(min).optional();
const list = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((s) =>
      s
        .split(',')
        .map((v) => v.trim())
        .filter(Boolean),
    );

const flag = (fallback: boolean) =>
  z
    .enum(['1', '0', 'true', 'false', 'yes', 'no'])
    .default(fallback ? 'true' : 'false')
    .transform((v) => v === '1' || v === 'true' || v === 'yes');

/**
 * Each edge engine's throughput in workerd as bench/edge-bench.ts measured it (its committed results, not typed in):
 * the routing estimate's defaults for that EDGE_ENGINE, so re-running the benchmark moves them. wasm-int8 has no run of
 * its own and takes wasm-fp32's figures, which its faster int8 kernels only undercut (a conservative estimate).
 */
const workerdThroughput = (bench: typeof edgeBenchWasm) => {
  const workerd = bench.edge.find((e) => e.runtime.startsWith('workerd'));
  if (!workerd) throw new Error(`bench/results: the run of '${bench.command}' has no workerd measurement`);
  return {
    prefillTokensPerS: workerd.throughput.prefillTokensPerS,
    decodeTokensPerS: workerd.throughput.decodeTokensPerS,
    command: bench.command,
  };
};
export const MEASURED_EDGE_THROUGHPUT = {
  'wasm-fp32': workerdThroughput(edgeBenchWasm),
  'wasm-int8': workerdThroughput(edgeBenchWasm),
  onnx: workerdThroughput(edgeBenchOnnx),
};

const envSchema = z.object({
  /** Comma-separated API keys (a secret). Every route but /healthz needs one of them. */
  API_KEYS: list('').pipe(
    z.array(z.string().min(16, 'each API key must be at least 16 characters')).min(1, 'API_KEYS is required'),
  ),
  /** The model name clients send; the runner must serve the same one (its RUNNER_MODEL_ID). */
  MODEL_ID: z.string().min(1).default('deciserve-mamba'),

  /** Base URL of the runner's signed intake (e.g. http://127.0.0.1:8790). Without it, long requests are refused. */
  RUNNER_URL: z.url({ protocol: /^https?$/ }).optional(),
  RUNNER_HMAC_SECRET: z.string().min(16, 'RUNNER_HMAC_SECRET must be at least 16 characters').optional(),

  /** Longest prompt run at the edge [the model's training length]; longer ones become runner jobs. */
  EDGE_MAX_PROMPT_TOKENS: optionalInt(1),
  /**
   * Longest prompt run at the edge with DeciMamba on, whose prefill holds the whole prompt at once. Default on the
   * WASM engines: no cap of their own, so the training length (8,192 for the shipped model): they hold [L, d_model]
   * activations, and at 8,192 tokens the wasm memory is 33.7 MiB and the workerd process peaks ≤87 MiB above its
   * start (fp32, bench/results/edge-memory-workerd.md). 1,024 on ORT, whose wasm heap grows to 121 MiB at 2,048
   * tokens and 363 MiB at 8,192 against a Worker's 128 MiB.
   */
  EDGE_MAX_DECIMATION_TOKENS: optionalInt(1),
  /** CPU one edge request may spend, estimated from the throughputs below (bench/edge-bench.ts measures them). */
  EDGE_CPU_BUDGET_MS: int(1, 10_000),
  /** Default: the measured figure of EDGE_ENGINE (MEASURED_EDGE_THROUGHPUT). */
  EDGE_PREFILL_TOKENS_PER_S: optionalInt(1),
  EDGE_DECODE_TOKENS_PER_S: optionalInt(1),
  /**
   * Scoring throughput (log-probabilities at every position). The red-team run of issue #13 measured an echo +
   * logprobs request with a 2,048-token prompt at 20.6 s: ~4.6 s of prefill at 450/s, ~16 s scoring (~128/s).
   */
  EDGE_SCORE_TOKENS_PER_S: int(1, 128),
  /**
   * The edge's engine (#16): 'wasm-fp32' (default) or 'wasm-int8', mamba/wasm's SIMD engine for prefill (DeciMamba
   * included) and decode, its weights read from the model folder's model.safetensors (ORT is not loaded); or 'onnx',
   * onnxruntime-web on the folder's ONNX export.
   */
  EDGE_ENGINE: z.enum(['wasm-fp32', 'wasm-int8', 'onnx']).default('wasm-fp32'),

  /**
   * Edge inferences one isolate/process runs at once, and how many more may wait for a slot (then 503). One isolate
   * has one thread, so more running adds no throughput (2 running + 4 queued gave p50 11 s in a 200-client burst;
   * 1 + 3 gave p50 0.8 s, p99 5.1 s; the default 1 + 2: p50 0.8 s, p99 2.8 s, bench/results/abuse-burst.json).
   */
  EDGE_MAX_RUNNING: int(1, 1),
  EDGE_MAX_QUEUED: int(0, 2),

  /**
   * How long a long /v1/completions or /v1/score waits for its job before answering 202 with the job's URL (on the
   * runner's long-poll: answered as the job ends).
   */
  JOB_WAIT_MS: int(0, 30_000),

  MAX_BODY_BYTES: int(1024, 4 * 1024 * 1024),
  /** Longest prompt accepted at all (the runner's RUNNER_MAX_PROMPT_TOKENS). */
  MAX_PROMPT_TOKENS: int(1, 262_144),
  /** Largest max_tokens accepted (the runner's RUNNER_MAX_NEW_TOKENS). */
  MAX_NEW_TOKENS: int(0, 4096),

  /** Allowed CORS origins, comma-separated; "*" for any. */
  CORS_ORIGINS: list('*'),
  /** Per-key requests per minute where no Workers rate-limit binding exists (Node); 0 = off. */
  RATE_LIMIT_PER_MINUTE: int(0, 600),
  /**
   * Per-key tokens per minute (prompt + max_tokens + scored tokens, charged when a request is placed, before any
   * inference), counted in this isolate/process; 0 = off. At least one maximal request (MAX_PROMPT_TOKENS +
   * MAX_NEW_TOKENS) must fit.
   */
  RATE_LIMIT_TOKENS_PER_MINUTE: int(0, 1_000_000),
  /**
   * Per-key edge CPU milliseconds per minute: the router's estimate for work placed at the edge, charged before it
   * runs; past it the work goes to the runner (429 without one). Counted in this isolate/process; 0 = off.
   */
  RATE_LIMIT_EDGE_CPU_MS_PER_MINUTE: int(0, 60_000),
  /** Serve /openapi.json and /docs without an API key (browsers cannot send one to open the docs page). */
  PUBLIC_DOCS: flag(false),
  /** One JSON log line per request (console; Workers Logs on Cloudflare). */
  LOG_REQUESTS: flag(false),
});

export type EdgeEnvVars = Partial<Record<keyof z.input<typeof envSchema>, string>>;

export class EdgeConfigError extends Error {
  override name = 'EdgeConfigError';
}

export function edgeConfig(env: Record<string, unknown>) {
  // Worker vars may be numbers or booleans in wrangler.toml; bindings (objects) are not settings.
  const strings = Object.fromEntries(
    Object.entries(env)
      .filter(([, v]) => ['string', 'number', 'boolean'].includes(typeof v) && v !== '')
      .map(([k, v]) => [k, String(v)]),
  );
  // Renamed in #16: a deployment that still sets it would silently get the default engine.
  if (strings.EDGE_DECODE !== undefined)
    throw new EdgeConfigError(
      'invalid edge configuration: EDGE_DECODE was renamed EDGE_ENGINE (wasm-fp32, wasm-int8, onnx)',
    );
  const parsed = envSchema.safeParse(strings);
  if (!parsed.success) {
    throw new EdgeConfigError(
      `invalid edge configuration: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  const e = parsed.data;
  if (e.RUNNER_URL && !e.RUNNER_HMAC_SECRET)
    throw new EdgeConfigError('invalid edge configuration: RUNNER_URL needs RUNNER_HMAC_SECRET');
  return {
    apiKeys: e.API_KEYS,
    modelId: e.MODEL_ID,
    runner:
      e.RUNNER_URL && e.RUNNER_HMAC_SECRET
        ? { url: e.RUNNER_URL.replace(/\/+$/, ''), secret: e.RUNNER_HMAC_SECRET }
        : null,
    edge: {
      maxPromptTokens: e.EDGE_MAX_PROMPT_TOKENS,
      /** undefined: no cap of its own, so the training length (routing.ts). */
      maxDecimationTokens: e.EDGE_MAX_DECIMATION_TOKENS ?? (e.EDGE_ENGINE === 'onnx' ? 1024 : undefined),
      engine: e.EDGE_ENGINE,
      cpuBudgetMs: e.EDGE_CPU_BUDGET_MS,
      prefillTokensPerS: e.EDGE_PREFILL_TOKENS_PER_S ?? MEASURED_EDGE_THROUGHPUT[e.EDGE_ENGINE].prefillTokensPerS,
      decodeTokensPerS: e.EDGE_DECODE_TOKENS_PER_S ?? MEASURED_EDGE_THROUGHPUT[e.EDGE_ENGINE].decodeTokensPerS,
      scoreTokensPerS: e.EDGE_SCORE_TOKENS_PER_S,
      maxRunning: e.EDGE_MAX_RUNNING,
      maxQueued: e.EDGE_MAX_QUEUED,
    },
    jobs: { waitMs: e.JOB_WAIT_MS },
    limits: { maxBodyBytes: e.MAX_BODY_BYTES, maxPromptTokens: e.MAX_PROMPT_TOKENS, maxNewTokens: e.MAX_NEW_TOKENS },
    corsOrigins: e.CORS_ORIGINS,
    rateLimitPerMinute: e.RATE_LIMIT_PER_MINUTE,
    rateLimitTokensPerMinute: e.RATE_LIMIT_TOKENS_PER_MINUTE,
    rateLimitEdgeCpuMsPerMinute: e.RATE_LIMIT_EDGE_CPU_MS_PER_MINUTE,
    publicDocs: e.PUBLIC_DOCS,
    logRequests: e.LOG_REQUESTS,
  };
}

export type EdgeConfig = ReturnType<typeof edgeConfig>;
