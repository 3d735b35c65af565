// Signed completion webhooks, delivered through their own BullMQ queue so they survive restarts and are retried
// with backoff. The body is the job's status view; the signature uses the same scheme as intake (signing.ts).
import { Queue, Worker, type RedisOptions } from 'bullmq';
import type { Logger } from 'pino';
import { jobView } from './intake.ts';
import type { RunnerMetrics } from './metrics.ts';
import type { JobQueue } from './queue.ts';
import type { JobStore } from './s3-store.ts';
import { signedHeaders } from './signing.ts';

export interface WebhookEvents {
  jobFinished(id: string, url: string | undefined): Promise<void>;
}

interface WebhookJob {
  id: string;
  url: string;
}

export class WebhookQueue implements WebhookEvents {
  constructor(
    private readonly queue: Queue<WebhookJob>,
    private readonly log: Logger,
  ) {}

  async jobFinished(id: string, url: string | undefined): Promise<void> {
    if (!url) return;
    try {
      await this.queue.add(
        'deliver',
        { id, url },
        { jobId: id, attempts: 8, backoff: { type: 'exponential', delay: 1000 }, removeOnComplete: { age: 3600 }, removeOnFail: { age: 7 * 86400 } },
      );
    } catch (err) {
      this.log.warn({ id, err: (err as Error).message }, 'could not queue webhook');
    }
  }
}

export function startWebhookWorker(
  name: string,
  connection: RedisOptions,
  deps: { store: JobStore; queue: JobQueue; secret: string; metrics: RunnerMetrics; log: Logger },
): Worker<WebhookJob> {
  const worker = new Worker<WebhookJob>(
    name,
    async (job) => {
      const view = await jobView(deps, job.data.id);
      if (!view) throw new Error(`job ${job.data.id} not found`);
      const body = JSON.stringify({ id: `evt_${job.data.id}`, object: 'event', type: `job.${view.status}`, created: Math.floor(Date.now() / 1000), data: view });
      const url = new URL(job.data.url);
      const headers = await signedHeaders(deps.secret, { method: 'POST', path: url.pathname + url.search, body });
      const res = await fetch(url, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json', 'user-agent': 'deciserve-runner' },
        body,
        signal: AbortSignal.timeout(5000),
        redirect: 'manual',
      });
      await res.body?.cancel();
      if (!res.ok) {
        deps.metrics.webhooks.inc({ outcome: 'retry' });
        throw new Error(`webhook answered ${res.status}`);
      }
      deps.metrics.webhooks.inc({ outcome: 'delivered' });
    },
    { connection, concurrency: 4 },
  );
  worker.on('failed', (job, err) => deps.log.warn({ id: job?.data.id, err: err.message }, 'webhook delivery failed'));
  worker.on('error', (err) => deps.log.warn({ err: err.message }, 'webhook worker error'));
  return worker;
}
