// Prometheus metrics (prom-client). Names are what infra/ dashboards and bench/ (#7, #8) read; keep them stable.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const P = 'deciserve_runner_';
const SECONDS = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];

export type QueueCounts = () => Promise<Record<string, number>>;

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: P });
  const r = [registry];
  let queueCounts: QueueCounts | null = null;

  const metrics = {
    registry,
    /** Set by the runner once its queue exists; read on every scrape. */
    setQueueCounts(fn: QueueCounts) {
      queueCounts = fn;
    },
    queueJobs: new Gauge({
      name: `${P}queue_jobs`,
      help: 'Jobs in the queue by state (waiting, prioritized, active, delayed = waiting to retry, failed, dead = dead-letter queue)',
      labelNames: ['state'],
      registers: r,
      async collect() {
        if (!queueCounts) return;
        try {
          const counts = await queueCounts();
          for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
        } catch {
          // Redis down: keep the last values; /readyz reports the outage.
        }
      },
    }),
    batchJobs: new Histogram({
      name: `${P}batch_jobs`,
      help: 'Jobs per engine pass',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: r,
    }),
    batchTokens: new Histogram({
      name: `${P}batch_tokens`,
      help: 'Token budget used by one engine pass (prompt + max new tokens)',
      buckets: [256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576],
      registers: r,
    }),
    passes: new Counter({ name: `${P}passes_total`, help: 'Engine passes run', registers: r }),
    tokens: new Counter({
      name: `${P}tokens_total`,
      help: 'Tokens processed: prompt (prefilled), completion (generated), scored',
      labelNames: ['kind', 'decimation'],
      registers: r,
    }),
    tokensPerSecond: new Gauge({
      name: `${P}tokens_per_second`,
      help: 'Prompt + generated tokens per engine second in the last pass',
      registers: r,
    }),
    jobStageSeconds: new Histogram({
      name: `${P}job_stage_seconds`,
      help: 'Job latency by stage: queue_wait (accepted → pass), load_input, engine, write_result, total (accepted → result stored)',
      labelNames: ['stage', 'type'],
      buckets: SECONDS,
      registers: r,
    }),
    jobs: new Counter({
      name: `${P}jobs_total`,
      help: 'Job outcomes: succeeded, retried, dead_lettered, duplicate (result already stored), released (shutdown)',
      labelNames: ['type', 'outcome'],
      registers: r,
    }),
    engineSeconds: new Counter({
      name: `${P}engine_seconds_total`,
      help: 'Engine busy time (CPU- or GPU-seconds; the cost model multiplies by $/s)',
      labelNames: ['engine', 'device', 'decimation'],
      registers: r,
    }),
    keptTokens: new Counter({
      name: `${P}kept_tokens_total`,
      help: 'Prompt tokens that survived decimation (equal to prompt tokens without it)',
      labelNames: ['decimation'],
      registers: r,
    }),
    s3Requests: new Counter({
      name: `${P}s3_requests_total`,
      help: 'S3 calls by operation and outcome (cost: per-request pricing)',
      labelNames: ['op', 'outcome'],
      registers: r,
    }),
    s3Bytes: new Counter({
      name: `${P}s3_bytes_total`,
      help: 'Bytes written to (out) and read from (in) S3',
      labelNames: ['direction'],
      registers: r,
    }),
    intake: new Counter({
      name: `${P}intake_requests_total`,
      help: 'Intake HTTP answers by route and status',
      labelNames: ['route', 'status'],
      registers: r,
    }),
    webhooks: new Counter({
      name: `${P}webhooks_total`,
      help: 'Webhook deliveries by outcome',
      labelNames: ['outcome'],
      registers: r,
    }),
    reconciled: new Counter({
      name: `${P}reconciled_jobs_total`,
      help: 'Jobs re-enqueued or dead-lettered from S3 by the reconciler',
      labelNames: ['action'],
      registers: r,
    }),
    draining: new Gauge({
      name: `${P}draining`,
      help: '1 while the runner finishes its batch after SIGTERM',
      registers: r,
    }),
  };
  return metrics;
}

export type RunnerMetrics = ReturnType<typeof createMetrics>;
