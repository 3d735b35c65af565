// Signed job API used by the edge API: submit (idempotent), status with a presigned result URL, cancel.
//   POST   /jobs        body: JobRequest; header Idempotency-Key (optional, recommended) → 202 (new) / 200 (known)
//   GET    /jobs/:id    → { id, status: queued|running|succeeded|failed|cancelled, result_url? , error? }
//                       ?wait=<s> (≤30): answered when the job ends or the wait runs out (store/job-waiters.ts)
//   DELETE /jobs/:id    → cancels a job that has not started
//   GET    /jobs        → the tenant's jobs, newest first (list-route.ts)
import { Hono } from 'hono';
import type { Logger } from 'pino';
import type { PromptMeter } from '../../mamba/token-budget.ts';
import {
  ApiError,
  badRequest,
  conflict,
  errorResponse,
  notFound,
  unavailable,
  zodError,
} from '../../protocol/api-errors.ts';
import { readBodyWithLimit } from '../../protocol/body-limit.ts';
import { requireSignature, type NonceStore, type SignedEnv } from './auth.ts';
import type { RunnerConfig } from '../config.ts';
import { runnerJobRequestSchema, type RunnerJobRequest } from '../../protocol/job-request.ts';
import { JobInputError, prepareEncodedJob } from '../../protocol/prepare-job.ts';
import { isJobId, jobIdFor, requestSha256, storePlan, type StoredJob } from '../store/jobs.ts';
import { type JobStatus, MAX_JOB_WAIT_S } from '../../protocol/job-view.ts';
import { baseView, jobView, storeCall, withTimeout } from '../store/job-status.ts';
import { JobWaiters, parseWait } from '../store/job-waiters.ts';
import type { RunnerMetrics } from '../metrics.ts';
import type { ModelDefaults } from '../model-defaults.ts';
import { enqueue, type JobQueue } from '../store/queue.ts';
import { refusedUrl } from '../webhooks/webhook-target.ts';
import type { JobStore } from '../store/s3-store.ts';
import type { JobIndex } from '../store/job-index.ts';
import { listJobsHandler } from './list-route.ts';
import { suitePromptTokens } from '../../protocol/suite-spec.ts';

export interface IntakeDeps {
  config: RunnerConfig;
  store: JobStore;
  queue: JobQueue;
  nonces: NonceStore;
  /** Each tenant's jobs for GET /jobs (Redis sorted sets), written before the job is enqueued. */
  index: JobIndex;
  /** Measures prompts against the token limit (runner/token-meter.ts: off the event loop). */
  meter: PromptMeter;
  /** Long-polls of GET /jobs/:id?wait= (woken by BullMQ's queue events); without it they re-read every 2 s. */
  waiters?: JobWaiters;
  model: ModelDefaults;
  metrics: RunnerMetrics;
  log: Logger;
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const TENANT = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * `?tenant=` (inside the signed path): the caller acts for that tenant and sees only its jobs; a job of another
 * tenant is answered 404, like an unknown one. Without it the caller is the operator (it holds the intake secret
 * either way) and sees every job.
 */
function tenantParam(c: { req: { query(name: string): string | undefined } }): string | undefined {
  const tenant = c.req.query('tenant');
  if (tenant !== undefined && !TENANT.test(tenant))
    throw badRequest('invalid_tenant', 'tenant must be 1-64 characters of A-Z a-z 0-9 _ -', 'tenant');
  return tenant;
}
const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Backpressure: refuses new jobs while the queue is deeper than RUNNER_MAX_QUEUE_DEPTH. The depth is read at most
 * once a second; when Redis cannot say, jobs are taken (the input goes to S3 first and the reconciler enqueues it).
 */
function queueDepthGuard(queue: JobQueue, limit: number) {
  let checked = 0;
  let depth = 0;
  return async () => {
    if (limit <= 0) return;
    if (Date.now() - checked > 1000) {
      checked = Date.now();
      const counts = await withTimeout(queue.getJobCounts('waiting', 'prioritized', 'delayed'), 1000).catch(() => null);
      depth = counts ? (counts.waiting ?? 0) + (counts.prioritized ?? 0) + (counts.delayed ?? 0) : 0;
    }
    if (depth >= limit)
      throw unavailable(
        'queue_full',
        `${depth} jobs are waiting (limit ${limit}); retry after the time in Retry-After`,
      );
  };
}

export function jobRoutes(deps: IntakeDeps) {
  const { config, store, queue, log, metrics } = deps;
  const checkDepth = queueDepthGuard(queue, config.limits.maxQueueDepth);
  const waiters = deps.waiters ?? new JobWaiters(null);
  const schema = runnerJobRequestSchema({
    maxNewTokens: config.limits.maxNewTokens,
    maxPromptChars: config.limits.maxBodyBytes,
  });
  const app = new Hono<SignedEnv>();

  app.use('*', async (c, next) => {
    await next();
    metrics.intake.inc({ route: `${c.req.method} /jobs`, status: String(c.res.status) });
  });
  app.use('*', readBodyWithLimit(config.limits.maxBodyBytes));
  app.use(
    '*',
    requireSignature({ secret: config.hmacSecret, windowS: config.limits.signatureWindowS, nonces: deps.nonces }),
  );

  app.post('/', async (c) => {
    const tenant = tenantParam(c);
    const idempotencyKey = c.req.header('idempotency-key');
    if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
      throw badRequest(
        'invalid_idempotency_key',
        'Idempotency-Key must be 1-255 printable ASCII characters',
        'Idempotency-Key',
      );
    }
    const contentType = c.req.header('content-type') ?? '';
    if (!/^application\/json\s*(;\s*charset=utf-8\s*)?$/i.test(contentType)) {
      throw new ApiError(
        415,
        'invalid_request_error',
        'unsupported_media_type',
        'Content-Type must be application/json',
      );
    }
    const request = parseRequest(c.get('rawBody'), schema);
    const webhookProblem = request.webhook ? refusedUrl(request.webhook.url, config.webhookPolicy) : null;
    if (webhookProblem) throw badRequest('invalid_webhook_url', `webhook.url: ${webhookProblem}`, 'webhook.url');
    if (request.model !== config.modelId) {
      throw notFound(
        'model_not_found',
        `model "${request.model}" is not served by this runner (it serves "${config.modelId}")`,
        'model',
      );
    }
    await checkDepth(); // before the tokenizing and the S3 write
    const { promptTokens, tokens } = await countTokens(deps, request);
    const id = jobIdFor(idempotencyKey);
    // Tokenized and planned here, once (decimation resolved, options set); the pass runs the stored plan as it is.
    const plan = tokens && request.type !== 'suite' ? planAtIntake(id, request, tokens, deps.model) : undefined;
    const requestHash = requestSha256(request);
    const stored: StoredJob = {
      id,
      created_at: Date.now(),
      request,
      request_sha256: requestHash,
      prompt_tokens: promptTokens,
      cost_tokens: promptTokens + (request.type === 'completion' ? request.max_tokens : 0),
      ...(tenant ? { tenant } : {}),
      ...(plan ? { plan: storePlan(plan) } : {}),
    };
    const written = await storeCall(() => store.putInputOnce(stored));
    let job = stored;
    if (written === 'exists') {
      const existing = await storeCall(() => store.getInput(id));
      if (!existing) throw unavailable('storage_unavailable', 'job input vanished; retry');
      if (existing.request_sha256 !== requestHash || existing.tenant !== tenant) {
        throw conflict(
          'idempotency_key_reused',
          'this Idempotency-Key was used with a different request',
          'Idempotency-Key',
        );
      }
      job = existing;
    }
    // The input is durable in S3 now. If Redis is away the reconciler indexes and enqueues it later: not fatal.
    try {
      await withTimeout(deps.index.add(job), 2000);
      await withTimeout(enqueue(queue, config, job), 2000);
    } catch (err) {
      log.warn({ id, err: (err as Error).message }, 'enqueue failed; the reconciler will enqueue the job from S3');
    }
    const view = written === 'created' ? baseView(job, 'queued') : await jobView(deps, id, job);
    log.info({ id, type: request.type, prompt_tokens: promptTokens, duplicate: written === 'exists' }, 'job accepted');
    return c.json(view, written === 'created' ? 202 : 200);
  });

  app.get(
    '/',
    listJobsHandler({ index: deps.index, view: (id, tenant) => jobView(deps, id, undefined, tenant) }, tenantParam),
  );

  app.get('/:id', async (c) => {
    const tenant = tenantParam(c);
    const wait = parseWait(c.req.query('wait'));
    if (wait === 'invalid')
      throw badRequest('invalid_wait', `wait must be a number of seconds from 0 to ${MAX_JOB_WAIT_S}`, 'wait');
    const id = c.req.param('id');
    if (!isJobId(id)) throw notFound('job_not_found', `no job ${id}`, 'id');
    const read = () => jobView(deps, id, undefined, tenant);
    const view = wait ? await waiters.until(id, Date.now() + wait * 1000, read) : await read();
    if (!view) throw notFound('job_not_found', `no job ${id}`, 'id');
    return c.json(view);
  });

  app.delete('/:id', async (c) => {
    const tenant = tenantParam(c);
    const id = c.req.param('id');
    if (!isJobId(id)) throw notFound('job_not_found', `no job ${id}`, 'id');
    const view = await jobView(deps, id, undefined, tenant);
    if (!view) throw notFound('job_not_found', `no job ${id}`, 'id');
    if (view.status === 'cancelled') return c.json(view);
    if (view.status !== 'queued') throw conflict('job_not_cancellable', `job is ${view.status}`, 'id');
    const job = await queue.getJob(id).catch(() => undefined);
    try {
      await job?.remove(); // throws while a runner holds the job's lock
    } catch {
      throw conflict('job_not_cancellable', 'job is running', 'id');
    }
    await storeCall(() =>
      store.putEnded({
        id,
        status: 'cancelled',
        error: { message: 'cancelled by the client', code: 'cancelled' },
        ended_at: Date.now(),
        attempts: 0,
      }),
    );
    return c.json({ ...view, status: 'cancelled' satisfies JobStatus });
  });

  app.onError((err, c) => {
    if (err instanceof ApiError) return errorResponse(c, err);
    log.error({ err }, 'intake error');
    return errorResponse(c, new ApiError(500, 'server_error', 'internal_error', 'internal error'));
  });
  return app;
}

function parseRequest(body: Uint8Array, schema: ReturnType<typeof runnerJobRequestSchema>): RunnerJobRequest {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw badRequest('invalid_encoding', 'body is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw badRequest('invalid_json', `body is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw zodError(parsed.error);
  return parsed.data;
}

/** A job's token ids, as its meter counted them: the prompt, and a score's continuation ([] without one). */
type JobTokens = { prompt: number[]; continuation: number[] };

function planAtIntake(
  id: string,
  request: Exclude<RunnerJobRequest, { type: 'suite' }>,
  tokens: JobTokens,
  model: ModelDefaults,
) {
  try {
    return prepareEncodedJob({ id, request }, tokens, model);
  } catch (err) {
    if (!(err instanceof JobInputError)) throw err;
    if (err.code === 'invalid_decimation') throw badRequest('invalid_decimation', err.message, 'decimation_params');
    throw badRequest('invalid_value', err.message, 'prompt');
  }
}

/**
 * Prompt tokens of a job, with its token ids; for a suite, the count of all its prompts (its cost in the batch budget,
 * so it gets a pass of its own). Bounded before the work and tokenized on the meter's thread (mamba/token-meter.ts),
 * so a 4 MiB prompt neither blocks /healthz nor costs more than the limit's worth of tokenizing.
 */
async function countTokens(
  deps: IntakeDeps,
  request: RunnerJobRequest,
): Promise<{ promptTokens: number; tokens?: JobTokens }> {
  const max = deps.config.limits.maxPromptTokens;
  if (request.type === 'suite') {
    const over = request.suite.lengths.find((length) => length > max);
    if (over !== undefined)
      throw badRequest(
        'context_length_exceeded',
        `suite length ${over}: this runner takes at most ${max} prompt tokens`,
        'suite.lengths',
      );
    return { promptTokens: suitePromptTokens(request.suite) };
  }
  const texts = request.continuation === undefined ? [request.prompt] : [request.prompt, request.continuation];
  const cost = await deps.meter.measure(texts, max, { keepIds: true });
  if (!cost.ok) {
    const bound = cost.reason === 'lower_bound' ? 'at least' : 'more than';
    const n = cost.reason === 'lower_bound' ? cost.tokens : max;
    throw badRequest(
      'context_length_exceeded',
      `${bound} ${n} prompt tokens; this runner takes at most ${max}`,
      'prompt',
    );
  }
  const total = cost.tokens;
  if (request.type === 'score' && total < 2)
    throw badRequest('invalid_value', 'score needs at least two tokens', 'prompt');
  const [prompt, continuation] = cost.ids ?? [];
  const tokens = prompt ? { prompt: Array.from(prompt), continuation: Array.from(continuation ?? []) } : undefined;
  return { promptTokens: total, tokens };
}
