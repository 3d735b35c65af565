// The runner's configuration, read from environment variables only (the container image in #8 sets them).
import { availableParallelism } from 'node:os';
import { basename, resolve } from 'node:path';
import { z } from 'zod';
import { ENGINE_KINDS } from './engine/engine-kinds.ts';

const int = (min: number, fallback: number) => z.coerce.number().int().min(min).default(fallback);
const flag = (fallback: boolean) =>
  z
    .enum(['1', '0', 'true', 'false', 'yes', 'no'])
    .default(fallback ? 'true' : 'false')
    .transform((v) => v === '1' || v === 'true' || v === 'yes');

const envSchema = z.object({
  RUNNER_HMAC_SECRET: z.string().min(16, 'RUNNER_HMAC_SECRET must be at least 16 characters'),
  /** Standard Webhooks secret: whsec_ + base64 of 24-64 random bytes (`echo whsec_$(openssl rand -base64 32)`). */
  RUNNER_WEBHOOK_SECRET: z
    .string()
    .regex(
      /^whsec_[A-Za-z0-9+/]{32,88}={0,2}$/,
      'RUNNER_WEBHOOK_SECRET must be whsec_ followed by base64 of 24-64 bytes',
    )
    .optional(),
  /** Local development only: webhooks may go to loopback addresses, over plain http too. */
  RUNNER_WEBHOOK_DEV_LOOPBACK: flag(false),
  RUNNER_MODEL_DIR: z.string().min(1, 'RUNNER_MODEL_DIR (a checkpoint folder) is required'),
  RUNNER_MODEL_ID: z.string().min(1).optional(),
  RUNNER_ENGINE: z.enum(ENGINE_KINDS).default('auto'),
  /** Engine threads, each with its own batch loop: one per GPU for cuda; up to the CPU cores for the others. */
  RUNNER_ENGINE_THREADS: z.coerce.number().int().min(1).max(64).default(1),
  /** Tokenizer threads per engine thread (mamba/token-pool.ts); unset: the cores left over, 0: tokenize on the engine thread. */
  RUNNER_TOKEN_THREADS: z.coerce.number().int().min(0).max(256).optional(),
  /** Which halves this process runs: the signed intake API, the batch worker, or both. */
  RUNNER_ROLES: z
    .string()
    .default('intake,worker')
    .transform((s) => s.split(',').map((r) => r.trim()))
    .pipe(z.array(z.enum(['intake', 'worker'])).min(1)),
  RUNNER_HOST: z.string().default('127.0.0.1'),
  RUNNER_PORT: int(0, 8790),
  /** Public base URL of this runner, used in status URLs it hands back. */
  RUNNER_PUBLIC_URL: z.string().optional(),

  REDIS_URL: z.string().default('redis://127.0.0.1:6390'),
  RUNNER_QUEUE: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default('deciserve-jobs'),

  S3_ENDPOINT: z.string().optional(),
  S3_REGION: z.string().default('us-east-1'),
  S3_BUCKET: z.string().default('deciserve'),
  S3_PREFIX: z.string().default(''),
  S3_ACCESS_KEY_ID: z.string().optional(),
  S3_SECRET_ACCESS_KEY: z.string().optional(),
  S3_FORCE_PATH_STYLE: flag(true),
  /** Create the bucket on start (local stacks and tests; production buckets come from infra/). */
  S3_CREATE_BUCKET: flag(false),
  /** How long one S3 read or write keeps retrying 5xx/network errors before the job attempt fails. */
  S3_RETRY_FOR_MS: int(0, 120_000),
  /** The same for the intake's calls, which answer the edge: past it, 503 storage_unavailable + Retry-After. */
  RUNNER_INTAKE_S3_RETRY_MS: int(0, 5_000),
  RUNNER_PRESIGN_TTL_S: int(1, 3600),

  RUNNER_BATCH_TOKENS: int(1, 65_536),
  RUNNER_BATCH_MAX_JOBS: int(1, 8),
  /**
   * Passes in flight per engine thread: 2 lets the next pass load and tokenize while one is on the engine, but takes
   * jobs from the queue a pass early (another runner cannot have them) and SIGTERM finishes both; 1 by default.
   */
  RUNNER_PASS_PIPELINE: z.coerce.number().int().min(1).max(4).default(1),
  RUNNER_JOB_ATTEMPTS: int(1, 5),
  RUNNER_BACKOFF_MS: int(0, 2000),
  // A killed runner's jobs go back to the queue within about LOCK + STALLED_INTERVAL (the lock is renewed every
  // LOCK/3 while held; issue #13's target is all jobs done <= 35 s after a kill -9, bench/abuse/recovery-bench.ts).
  RUNNER_LOCK_MS: int(500, 10_000),
  RUNNER_STALLED_INTERVAL_MS: int(200, 5_000),
  RUNNER_MAX_STALLED: int(0, 2),
  /** Longest a blocking fetch waits for new work; also bounds how long SIGTERM waits on an idle runner. */
  RUNNER_IDLE_POLL_MS: int(100, 2000),
  RUNNER_RECONCILE_INTERVAL_MS: int(0, 60_000),

  RUNNER_SIGNATURE_WINDOW_S: int(1, 300),
  RUNNER_MAX_BODY_BYTES: int(1024, 4 * 1024 * 1024),
  RUNNER_MAX_PROMPT_TOKENS: int(1, 262_144),
  RUNNER_MAX_NEW_TOKENS: int(0, 4096),
  /** Jobs waiting in Redis (waiting + prioritized + delayed) past which the intake answers 503 + Retry-After; 0 = no limit. */
  RUNNER_MAX_QUEUE_DEPTH: int(0, 10_000),
  /** decimation "auto" turns DeciMamba on above this many prompt tokens [deciserve.json trainingLength, else 2048]. */
  RUNNER_TRAIN_LEN: z.coerce.number().int().min(1).optional(),

  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type RunnerConfig = ReturnType<typeof configFromEnv>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function configFromEnv(env: Record<string, string | undefined> = process.env) {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid runner configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  if (e.RUNNER_WEBHOOK_SECRET === e.RUNNER_HMAC_SECRET)
    throw new ConfigError('invalid runner configuration: RUNNER_WEBHOOK_SECRET must differ from RUNNER_HMAC_SECRET');
  if (e.RUNNER_ROLES.includes('worker') && !e.RUNNER_WEBHOOK_SECRET) {
    throw new ConfigError(
      'invalid runner configuration: RUNNER_WEBHOOK_SECRET is required with the worker role (whsec_ + base64; it signs client webhooks and must not be RUNNER_HMAC_SECRET)',
    );
  }
  const modelDir = resolve(e.RUNNER_MODEL_DIR);
  return {
    hmacSecret: e.RUNNER_HMAC_SECRET,
    /** Required by the worker role (runner.ts); never the intake secret. */
    webhookSecret: e.RUNNER_WEBHOOK_SECRET ?? null,
    webhookPolicy: { allowLoopback: e.RUNNER_WEBHOOK_DEV_LOOPBACK },
    modelDir,
    modelId: e.RUNNER_MODEL_ID ?? basename(modelDir),
    engine: e.RUNNER_ENGINE,
    engineThreads: e.RUNNER_ENGINE_THREADS,
    tokenThreads:
      e.RUNNER_TOKEN_THREADS ??
      Math.max(1, Math.floor((availableParallelism() - e.RUNNER_ENGINE_THREADS) / e.RUNNER_ENGINE_THREADS)),
    roles: new Set(e.RUNNER_ROLES),
    host: e.RUNNER_HOST,
    port: e.RUNNER_PORT,
    publicUrl: e.RUNNER_PUBLIC_URL,
    redisUrl: e.REDIS_URL,
    queueName: e.RUNNER_QUEUE,
    s3: {
      endpoint: e.S3_ENDPOINT,
      region: e.S3_REGION,
      bucket: e.S3_BUCKET,
      prefix: e.S3_PREFIX,
      credentials:
        e.S3_ACCESS_KEY_ID && e.S3_SECRET_ACCESS_KEY
          ? { accessKeyId: e.S3_ACCESS_KEY_ID, secretAccessKey: e.S3_SECRET_ACCESS_KEY }
          : undefined,
      forcePathStyle: e.S3_FORCE_PATH_STYLE,
      createBucket: e.S3_CREATE_BUCKET,
      retryForMs: e.S3_RETRY_FOR_MS,
      intakeRetryForMs: e.RUNNER_INTAKE_S3_RETRY_MS,
      presignTtlS: e.RUNNER_PRESIGN_TTL_S,
    },
    batch: { maxTokens: e.RUNNER_BATCH_TOKENS, maxJobs: e.RUNNER_BATCH_MAX_JOBS, pipeline: e.RUNNER_PASS_PIPELINE },
    jobs: {
      attempts: e.RUNNER_JOB_ATTEMPTS,
      backoffMs: e.RUNNER_BACKOFF_MS,
      lockMs: e.RUNNER_LOCK_MS,
      stalledIntervalMs: e.RUNNER_STALLED_INTERVAL_MS,
      maxStalled: e.RUNNER_MAX_STALLED,
      idlePollMs: e.RUNNER_IDLE_POLL_MS,
      reconcileIntervalMs: e.RUNNER_RECONCILE_INTERVAL_MS,
    },
    limits: {
      signatureWindowS: e.RUNNER_SIGNATURE_WINDOW_S,
      maxBodyBytes: e.RUNNER_MAX_BODY_BYTES,
      maxPromptTokens: e.RUNNER_MAX_PROMPT_TOKENS,
      maxNewTokens: e.RUNNER_MAX_NEW_TOKENS,
      maxQueueDepth: e.RUNNER_MAX_QUEUE_DEPTH,
      trainLen: e.RUNNER_TRAIN_LEN,
    },
    logLevel: e.LOG_LEVEL,
  };
}

/** The variables and their meaning, for --help. */
export const CONFIG_HELP = `Environment:
  RUNNER_HMAC_SECRET (required)   shared secret with the edge API (≥16 chars); signs intake requests
  RUNNER_WEBHOOK_SECRET           signs webhooks (Standard Webhooks, whsec_<base64>); required with the worker role
  RUNNER_WEBHOOK_DEV_LOOPBACK     1: webhooks may go to loopback, http too (local development only) [0]
  RUNNER_MODEL_DIR (required)     checkpoint folder (config.json, model.safetensors, tokenizer.json)
  RUNNER_MODEL_ID                 model name clients use [basename of RUNNER_MODEL_DIR]
  RUNNER_ENGINE                   ${ENGINE_KINDS.join(' | ')} [auto: cuda with a GPU, else onnx]
  RUNNER_ENGINE_THREADS           engine threads with their own batch loops: one per GPU (cuda) [1]
  RUNNER_TOKEN_THREADS            tokenizer threads per engine thread; 0 = tokenize on the engine thread [cores left over]
  RUNNER_ROLES                    intake,worker | intake | worker [intake,worker]
  RUNNER_HOST / RUNNER_PORT       HTTP listen address [127.0.0.1:8790]; 0 picks a free port
  REDIS_URL                       BullMQ's Redis [redis://127.0.0.1:6390]
  RUNNER_QUEUE                    queue name [deciserve-jobs]
  S3_ENDPOINT, S3_REGION, S3_BUCKET, S3_PREFIX, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY, S3_FORCE_PATH_STYLE
  S3_CREATE_BUCKET                create the bucket on start [false]
  S3_RETRY_FOR_MS                 the worker keeps retrying an S3 5xx/network error this long per call [120000]
  RUNNER_INTAKE_S3_RETRY_MS       the intake's budget per call, then 503 storage_unavailable + Retry-After [5000]
  RUNNER_BATCH_TOKENS / RUNNER_BATCH_MAX_JOBS   token budget and job cap of one engine pass [65536 / 8]
  RUNNER_PASS_PIPELINE            passes in flight per engine thread; 2: the next loads and tokenizes during one [1]
  RUNNER_JOB_ATTEMPTS / RUNNER_BACKOFF_MS       retries (exponential backoff) before the dead-letter queue [5 / 2000]
  RUNNER_LOCK_MS / RUNNER_STALLED_INTERVAL_MS / RUNNER_MAX_STALLED   stalled-job recovery [10000 / 5000 / 2]
  RUNNER_IDLE_POLL_MS             longest blocking wait for work [2000]
  RUNNER_RECONCILE_INTERVAL_MS    re-enqueue jobs found in S3 but not in Redis; 0 = only at start [60000]
  RUNNER_SIGNATURE_WINDOW_S       accepted clock skew of signed requests [300]
  RUNNER_MAX_BODY_BYTES / RUNNER_MAX_PROMPT_TOKENS / RUNNER_MAX_NEW_TOKENS   intake limits [4 MiB / 262144 / 4096]
  RUNNER_MAX_QUEUE_DEPTH          jobs waiting in Redis past which POST /jobs is 503 + Retry-After; 0 = off [10000]
  RUNNER_TRAIN_LEN                decimation "auto" turns on above this prompt length
                                  [the checkpoint's deciserve.json trainingLength, else 2048]
  (the default DeciMamba layers come from deciserve.json too, else the middle layer)
  LOG_LEVEL                       pino level [info]`;
