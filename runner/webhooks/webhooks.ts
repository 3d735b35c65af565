// Signed completion webhooks, delivered through their own BullMQ queue so they survive restarts and are retried
// with backoff. The body is the job's status view. Signed the Standard Webhooks way (webhook-id, webhook-timestamp,
// webhook-signature; the `standardwebhooks` package, so clients verify with any of its libraries) with
// RUNNER_WEBHOOK_SECRET, never the intake secret (a webhook pointed at /jobs must not look like an intake call).
// Targets are checked and pinned by webhook-target.ts.
import { type Queue, UnrecoverableError, Worker, type RedisOptions } from 'bullmq';
import type { Logger } from 'pino';
import { Webhook } from 'standardwebhooks';
import type { WebhookEvents } from '../store/jobs.ts';
import { jobView } from '../store/job-status.ts';
import type { RunnerMetrics } from '../metrics.ts';
import type { JobQueue } from '../store/queue.ts';
import type { JobStore } from '../store/s3-store.ts';
import { postToTarget, WebhookTargetError, type Resolver, type TargetPolicy } from './webhook-target.ts';

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
        {
          jobId: id,
          attempts: 8,
          backoff: { type: 'exponential', delay: 1000 },
          removeOnComplete: { age: 3600 },
          removeOnFail: { age: 7 * 86400 },
        },
      );
    } catch (err) {
      this.log.warn({ id, err: (err as Error).message }, 'could not queue webhook');
    }
  }
}

export function startWebhookWorker(
  name: string,
  connection: RedisOptions,
  deps: {
    store: JobStore;
    queue: JobQueue;
    secret: string;
    policy: TargetPolicy;
    resolver?: Resolver;
    metrics: RunnerMetrics;
    log: Logger;
  },
): Worker<WebhookJob> {
  const signer = new Webhook(deps.secret);
  const worker = new Worker<WebhookJob>(
    name,
    async (job) => {
      const view = await jobView(deps, job.data.id);
      if (!view) throw new Error(`job ${job.data.id} not found`);
      const body = JSON.stringify({
        id: `evt_${job.data.id}`,
        object: 'event',
        type: `job.${view.status}`,
        created: Math.floor(Date.now() / 1000),
        data: view,
      });
      const eventId = `evt_${job.data.id}`; // the same on every retry: receivers dedup by webhook-id
      const sentAt = new Date();
      const headers = {
        'webhook-id': eventId,
        'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)),
        'webhook-signature': signer.sign(eventId, sentAt, body),
        'content-type': 'application/json',
        'user-agent': 'deciserve-runner',
      };
      const res = await postToTarget(job.data.url, body, headers, {
        policy: deps.policy,
        resolver: deps.resolver,
        timeoutMs: 5000,
      }).catch((err: Error) => {
        if (!(err instanceof WebhookTargetError)) throw err;
        deps.metrics.webhooks.inc({ outcome: 'refused' });
        throw new UnrecoverableError(err.message); // a refused target stays refused: no retries
      });
      const ok = res.status >= 200 && res.status < 300;
      if (!ok) {
        deps.metrics.webhooks.inc({ outcome: 'retry' });
        throw new Error(`webhook answered ${res.status}${res.location ? ' (redirects are not followed)' : ''}`);
      }
      deps.metrics.webhooks.inc({ outcome: 'delivered' });
    },
    { connection, concurrency: 4 },
  );
  worker.on('failed', (job, err) => deps.log.warn({ id: job?.data.id, err: err.message }, 'webhook delivery failed'));
  worker.on('error', (err) => deps.log.warn({ err: err.message }, 'webhook worker error'));
  return worker;
}
