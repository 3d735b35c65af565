// Composition root: wires S3, BullMQ, the engine thread, the batch loop and the HTTP app for one runner process.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { parseConfig } from '../mamba/config.ts';
import { BatchLoop } from './pass/batch-loop.ts';
import type { RunnerConfig } from './config.ts';
import { EngineHost } from './engine/engine-host.ts';
import { readTokenizer } from './engine/engine-factory.ts';
import { ThreadMeter } from '../mamba/token-meter.ts';
import { buildHttpApp, type Readiness } from './intake/http-app.ts';
import { jobRoutes } from './intake/intake.ts';
import { JobIndex } from './store/job-index.ts';
import type { QueueJobData } from './store/jobs.ts';
import { createMetrics, type RunnerMetrics } from './metrics.ts';
import { readModelDefaults } from './model-defaults.ts';
import { queueCounts, queueNames, redisOptions, type JobQueue } from './store/queue.ts';
import { JobWaiters } from './store/job-waiters.ts';
import { reconcile } from './store/reconcile.ts';
import { JobStore } from './store/s3-store.ts';
import { WebhookQueue, startWebhookWorker } from './webhooks/webhooks.ts';

export interface RunningRunner {
  /** The HTTP port actually bound (RUNNER_PORT=0 picks one). */
  port: number;
  metrics: RunnerMetrics;
  /** Graceful stop: finish the current pass, take nothing new, close connections. */
  close(): Promise<void>;
  /** Resolves if the engine thread dies; the process should then exit non-zero. */
  fatal: Promise<Error>;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timeout')), ms).unref())]);
}

export async function startRunner(config: RunnerConfig, log: Logger): Promise<RunningRunner> {
  // The model first: a wrong RUNNER_MODEL_DIR should fail at once, not after Redis and S3 answer.
  const modelConfig = parseConfig(JSON.parse(await readFile(join(config.modelDir, 'config.json'), 'utf8')));
  await readTokenizer(config.modelDir); // a broken tokenizer.json fails here, not on the first request
  const model = await readModelDefaults(config.modelDir, modelConfig.nLayer, config.limits.trainLen);
  const metrics = createMetrics();
  const store = JobStore.fromConfig(config, log, metrics);
  // Intake answers the edge within seconds: it gives S3 a short retry budget and answers 503 after it.
  const intakeStore = JobStore.fromConfig(
    { ...config, s3: { ...config.s3, retryForMs: config.s3.intakeRetryForMs } },
    log,
    metrics,
  );
  if (config.s3.createBucket) await store.ensureBucket();

  const names = queueNames(config.queueName);
  const producer = redisOptions(config.redisUrl, { failFast: true });
  const queue: JobQueue = new Queue<QueueJobData>(names.jobs, { connection: producer });
  const deadQueue = new Queue(names.dead, { connection: producer });
  const webhookQueue = new Queue(names.webhooks, { connection: producer });
  for (const q of [queue, deadQueue, webhookQueue])
    q.on('error', (err) => log.warn({ queue: q.name, err: err.message }, 'redis error'));
  await queue.waitUntilReady();
  metrics.setQueueCounts(() => queueCounts(queue, deadQueue));
  const webhooks = new WebhookQueue(webhookQueue, log);

  // Nonces and readiness pings; fails fast while Redis is away instead of queueing commands.
  const redis = new Redis(config.redisUrl, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (n) => Math.min(n * 200, 2000),
  });
  redis.on('error', () => {}); // reported through /readyz and the queues' own error logs
  const index = new JobIndex(redis, config.queueName);

  let draining = false;
  let s3Checked = { at: 0, ok: 'ok' as string };
  const readiness = async (): Promise<Readiness> => {
    const checks: Readiness['checks'] = {};
    checks.redis = await withTimeout(redis.ping(), 1000).then(
      () => 'ok',
      (err: Error) => `down: ${err.message}`,
    );
    if (Date.now() - s3Checked.at > 5000) {
      const ok = await withTimeout(store.ping(), 2000).then(
        () => 'ok',
        (err: Error) => `down: ${err.name}`,
      );
      s3Checked = { at: Date.now(), ok };
    }
    checks.s3 = s3Checked.ok;
    if (config.roles.has('worker'))
      checks.engine = engines.length === config.engineThreads && engines.every((e) => e.alive) ? 'ok' : 'not loaded';
    checks.draining = draining ? 'draining' : 'ok';
    return { ready: Object.values(checks).every((v) => v === 'ok'), checks };
  };

  let fatalResolve!: (err: Error) => void;
  const fatal = new Promise<Error>((resolve) => (fatalResolve = resolve));

  const engines: EngineHost[] = [];
  const loops: BatchLoop[] = [];
  const loopsDone: Promise<void>[] = [];
  const workers: Worker<QueueJobData>[] = [];
  let webhookWorker: Worker | null = null;
  let reconcileTimer: NodeJS.Timeout | null = null;
  if (config.roles.has('worker')) {
    // One engine thread per device (a GPU each for the CUDA engine; CPU cores for the others), each with its own
    // BullMQ consumer and batch loop, all on the same queue.
    const consumer = redisOptions(config.redisUrl, { failFast: false });
    for (let device = 0; device < config.engineThreads; device++) {
      const host = await EngineHost.start({
        kind: config.engine,
        modelDir: config.modelDir,
        device,
        tokenThreads: config.tokenThreads,
        context: { modelId: config.modelId, model, modelDir: config.modelDir },
        logLevel: config.logLevel,
      });
      host.on('fatal', (err) => {
        log.fatal({ device, err: err.message }, 'engine thread died');
        fatalResolve(err);
      });
      engines.push(host);
      const worker = new Worker<QueueJobData>(names.jobs, null, {
        connection: consumer,
        autorun: false,
        lockDuration: config.jobs.lockMs,
        stalledInterval: config.jobs.stalledIntervalMs,
        maxStalledCount: config.jobs.maxStalled,
        drainDelay: config.jobs.idlePollMs / 1000,
      });
      worker.on('error', (err) => log.warn({ device, err: err.message }, 'worker redis error'));
      worker.on('stalled', (id) => log.warn({ id }, 'stalled job moved back to the queue'));
      await worker.waitUntilReady();
      await worker.startStalledCheckTimer();
      workers.push(worker);
      const loop = new BatchLoop({
        config,
        worker,
        engine: host,
        store,
        deadQueue,
        webhooks,
        metrics,
        log: log.child({ device }),
      });
      loops.push(loop);
      loopsDone.push(
        loop.run().catch((err: Error) => {
          log.fatal({ device, err: err.message }, 'batch loop crashed');
          fatalResolve(err);
        }),
      );
    }
    log.info({ engine: engines[0]!.engineName, model: config.modelId, threads: engines.length }, 'engines ready');
    webhookWorker = startWebhookWorker(names.webhooks, consumer, {
      store,
      queue,
      secret: config.webhookSecret!,
      policy: config.webhookPolicy,
      metrics,
      log,
    });
    const reconcileDeps = { config, store, queue, deadQueue, webhooks, metrics, log, index };
    const runReconcile = () =>
      reconcile(reconcileDeps).catch((err: Error) =>
        log.warn({ err: err.message }, 'reconcile failed; will try again'),
      );
    void runReconcile();
    if (config.jobs.reconcileIntervalMs > 0)
      reconcileTimer = setInterval(runReconcile, config.jobs.reconcileIntervalMs);
  }

  // Prompts are measured on a thread of their own: a token bomb does not hold /healthz (issue #13).
  const meter = config.roles.has('intake')
    ? new ThreadMeter({
        tokenizerPath: join(config.modelDir, 'tokenizer.json'),
        configPath: join(config.modelDir, 'tokenizer_config.json'),
      })
    : null;
  await meter?.measure(['warm up'], 1); // the thread is started and its tokenizer loaded before the first request
  // Long-polls wake on the queue's own events (a blocking Redis connection of their own).
  const events = meter
    ? new QueueEvents(names.jobs, { connection: redisOptions(config.redisUrl, { failFast: false }) })
    : null;
  events?.on('error', (err) => log.warn({ err: err.message }, 'queue events error; long-polls re-read meanwhile'));
  const waiters = events ? new JobWaiters(events) : null;
  const jobs = meter
    ? jobRoutes({
        config,
        store: intakeStore,
        index,
        queue,
        nonces: {
          claim: async (nonce, ttlMs) =>
            (await withTimeout(redis.set(`${config.queueName}:nonce:${nonce}`, '1', 'PX', ttlMs, 'NX'), 2000)) === 'OK',
        },
        meter,
        waiters: waiters ?? undefined,
        model,
        metrics,
        log,
      })
    : undefined;
  const app = buildHttpApp({ metrics, readiness, jobs });
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () => resolve(s));
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ port, roles: [...config.roles], queue: config.queueName }, 'runner listening');

  let closing: Promise<void> | null = null;
  const close = () =>
    (closing ??= (async () => {
      draining = true;
      metrics.draining.set(1);
      log.info('draining: finishing the current pass, taking nothing new');
      if (reconcileTimer) clearInterval(reconcileTimer);
      for (const loop of loops) loop.stop();
      await waiters?.close(); // long-polls answer now with the job as it stands
      await Promise.all(loopsDone);
      await webhookWorker?.close();
      await Promise.all(workers.map((w) => w.close()));
      await Promise.all(engines.map((e) => e.close()));
      await meter?.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as import('node:http').Server).closeIdleConnections?.();
      });
      await Promise.all([queue.close(), deadQueue.close(), webhookQueue.close()]);
      redis.disconnect();
      log.info({ completed: loops.reduce((n, l) => n + l.completed, 0) }, 'runner stopped');
    })());
  return { port, metrics, close, fatal };
}
