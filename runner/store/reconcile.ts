// Makes Redis agree with S3, the source of truth. Run at start and periodically by every worker (idempotent:
// BullMQ ignores adds of existing job ids). It covers a Redis that lost data, an intake that stored the input but
// could not enqueue, and jobs BullMQ failed on its own (stalled too often) without a dead-letter record.
import type { Logger } from 'pino';
import { deadLetter } from './job-status.ts';
import { errorFromReason } from '../../protocol/job-view.ts';
import type { RunnerConfig } from '../config.ts';
import type { RunnerMetrics } from '../metrics.ts';
import { enqueue, type JobQueue } from './queue.ts';
import type { JobStore } from './s3-store.ts';
import type { Queue } from 'bullmq';
import type { WebhookEvents } from './jobs.ts';
import type { JobIndex } from './job-index.ts';

export interface ReconcileDeps {
  config: RunnerConfig;
  store: JobStore;
  queue: JobQueue;
  deadQueue: Queue;
  webhooks: WebhookEvents;
  metrics: RunnerMetrics;
  log: Logger;
  /** GET /jobs' index: every input S3 holds is listed (job-index.ts addMissing). */
  index?: JobIndex;
}

export async function reconcile(
  deps: ReconcileDeps,
): Promise<{ requeued: string[]; deadLettered: string[]; indexed: string[] }> {
  const { store, queue, config, metrics, log } = deps;
  const [inputs, results, ended] = await Promise.all([
    store.listIds('inputs'),
    store.listIds('results'),
    store.listIds('ended'),
  ]);
  const requeued: string[] = [];
  const deadLettered: string[] = [];
  for (const id of inputs) {
    if (results.has(id) || ended.has(id)) continue;
    const job = await queue.getJob(id);
    if (!job) {
      const input = await store.getInput(id);
      if (!input) continue;
      await enqueue(queue, config, input);
      requeued.push(id);
      metrics.reconciled.inc({ action: 'requeued' });
    } else if ((await job.getState()) === 'failed') {
      await deadLetter(deps, id, errorFromReason(job.failedReason ?? 'failed'), job.attemptsMade, job.data.webhook_url);
      deadLettered.push(id);
      metrics.reconciled.inc({ action: 'dead_lettered' });
    }
  }
  const indexed = deps.index ? await deps.index.addMissing(inputs, store) : [];
  if (requeued.length || deadLettered.length || indexed.length)
    log.info({ requeued, deadLettered, indexed }, 'reconciled queue with S3');
  return { requeued, deadLettered, indexed };
}
