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
  const counter = <const L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Counter<L>({ name: `${P}${name}`, help, labelNames, registers: r });
  const gauge = <const L extends string = never>(name: string, help: string, labelNames: readonly L[] = []) =>
    new Gauge<L>({ name: `${P}${name}`, help, labelNames, registers: r });
  const histogram = <const L extends string = never>(
    name: string,
    help: string,
    buckets: number[],
    labelNames: readonly L[] = [],
  ) => new Histogram<L>({ name: `${P}${name}`, help, buckets, labelNames, registers: r });

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
    batchJobs: histogram('batch_jobs', 'Jobs per engine pass', [1, 2, 4, 8, 16, 32, 64]),
    batchTokens: histogram(
      'batch_tokens',
      'Token budget used by one engine pass (prompt + max new tokens)',
      [256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576],
    ),
    passes: counter('passes_total', 'Engine passes run'),
    tokens: counter('tokens_total', 'Tokens processed: prompt (prefilled), completion (generated), scored', [
      'kind',
      'decimation',
    ]),
    tokensPerSecond: gauge('tokens_per_second', 'Prompt + generated tokens per engine second in the last pass'),
    jobStageSeconds: histogram(
      'job_stage_seconds',
      'Job latency by stage: queue_wait (accepted → pass), load_input, engine, write_result, total (accepted → result stored)',
      SECONDS,
      ['stage', 'type'],
    ),
    jobs: counter(
      'jobs_total',
      'Job outcomes: succeeded, retried, dead_lettered, duplicate (result already stored), released (shutdown)',
      ['type', 'outcome'],
    ),
    engineSeconds: counter(
      'engine_seconds_total',
      'Engine busy time (CPU- or GPU-seconds; the cost model multiplies by $/s)',
      ['engine', 'device', 'decimation'],
    ),
    keptTokens: counter(
      'kept_tokens_total',
      'Prompt tokens that survived decimation (equal to prompt tokens without it)',
      ['decimation'],
    ),
    s3Requests: counter('s3_requests_total', 'S3 calls by operation and outcome (cost: per-request pricing)', [
      'op',
      'outcome',
    ]),
    s3Bytes: counter('s3_bytes_total', 'Bytes written to (out) and read from (in) S3', ['direction']),
    intake: counter('intake_requests_total', 'Intake HTTP answers by route and status', ['route', 'status']),
    webhooks: counter('webhooks_total', 'Webhook deliveries by outcome', ['outcome']),
    reconciled: counter('reconciled_jobs_total', 'Jobs re-enqueued or dead-lettered from S3 by the reconciler', [
      'action',
    ]),
    draining: gauge('draining', '1 while the runner finishes its batch after SIGTERM'),
  };
  return metrics;
}

export type RunnerMetrics = ReturnType<typeof createMetrics>;
