// BullMQ queues on Redis: the job queue, its dead-letter queue, and durable webhook deliveries.
import type { Queue, JobsOptions, RedisOptions } from 'bullmq';
import type { RunnerConfig } from '../config.ts';
import type { QueueJobData, StoredJob } from './jobs.ts';

export function queueNames(base: string) {
  return { jobs: base, dead: `${base}-dead`, webhooks: `${base}-webhooks` };
}

/**
 * failFast: producers (intake) should fail at once while Redis is down — the job is already in S3 and the
 * reconciler enqueues it later. Workers wait for Redis forever instead (BullMQ requires maxRetriesPerRequest null).
 */
export function redisOptions(url: string, { failFast }: { failFast: boolean }): RedisOptions {
  return failFast
    ? { url, enableOfflineQueue: false, maxRetriesPerRequest: 1, retryStrategy: (n: number) => Math.min(n * 200, 2000) }
    : { url, maxRetriesPerRequest: null, retryStrategy: (n: number) => Math.min(n * 200, 2000) };
}

export function jobOptions(config: RunnerConfig, job: StoredJob): JobsOptions {
  return {
    jobId: job.id, // BullMQ ignores an add whose id exists: resubmission and re-enqueue are idempotent
    priority: job.request.priority,
    attempts: config.jobs.attempts,
    backoff: { type: 'exponential', delay: config.jobs.backoffMs },
    removeOnComplete: { age: 24 * 3600 },
    removeOnFail: { age: 7 * 24 * 3600 },
  };
}

export function queueData(job: StoredJob): QueueJobData {
  return {
    id: job.id,
    type: job.request.type,
    cost_tokens: job.cost_tokens,
    prompt_tokens: job.prompt_tokens,
    created_at: job.created_at,
    ...(job.request.webhook ? { webhook_url: job.request.webhook.url } : {}),
    ...(job.tenant ? { tenant: job.tenant } : {}),
  };
}

export type JobQueue = Queue<QueueJobData>;

export function enqueue(queue: JobQueue, config: RunnerConfig, job: StoredJob) {
  return queue.add(job.request.type, queueData(job), jobOptions(config, job));
}

/** Queue depth by state, for /metrics. */
export async function queueCounts(queue: JobQueue, dead: Queue): Promise<Record<string, number>> {
  const counts = await queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
  counts.dead = await dead.count();
  return counts;
}
