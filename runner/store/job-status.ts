// A job's status as the job API and the webhooks report it (jobView: Redis first, S3 the source of truth), and the
// record a job leaves when it fails for good (deadLetter).
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import { unavailable } from '../../protocol/api-errors.ts';
import { errorFromReason, type JobStatus, type JobView } from '../../protocol/job-view.ts';
import type { StoredJob, WebhookEvents } from './jobs.ts';
import type { JobQueue } from './queue.ts';
import type { JobStore } from './s3-store.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a Redis call that must not hang the request while Redis is away. */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms).unref()),
  ]);
}

export async function storeCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw unavailable('storage_unavailable', `object storage is unavailable (${(err as Error).message}); retry`);
  }
}

export function baseView(job: StoredJob, status: JobStatus): JobView {
  return {
    id: job.id,
    object: 'job',
    type: job.request.type,
    status,
    created_at: job.created_at,
    prompt_tokens: job.prompt_tokens,
  };
}

/**
 * The job's status. Redis first, which is free to poll while the job is known there; S3 (the source of truth) when
 * Redis has no record of it (expired, cancelled, lost) or BullMQ failed it. Null when the job is unknown.
 */
export async function jobView(
  deps: { store: JobStore; queue: JobQueue },
  id: string,
  known?: StoredJob,
  tenant?: string,
): Promise<JobView | null> {
  const { store, queue } = deps;
  const job = await withTimeout(queue.getJob(id), 2000).catch(() => undefined);
  let failedReason: string | undefined;
  // Redis' copy names the tenant too (queueData); a job it knows under another tenant is nobody's business here.
  if (job && tenant !== undefined && job.data.tenant !== tenant) return null;
  if (job) {
    const state = await withTimeout(job.getState(), 2000).catch(() => 'unknown');
    const view: JobView = {
      id,
      object: 'job',
      type: job.data.type,
      status: 'queued',
      created_at: job.data.created_at,
      prompt_tokens: job.data.prompt_tokens,
      // Attempts started, the current one included: attemptsMade only counts attempts that have ended.
      attempts: Math.max(job.attemptsStarted ?? 0, job.attemptsMade),
    };
    // A completed BullMQ job always has its result stored: results are written before jobs complete.
    if (state === 'completed') return { ...view, status: 'succeeded', result_url: await store.presignResult(id) };
    if (state === 'active') return { ...view, status: 'running' };
    if (state === 'waiting' || state === 'prioritized' || state === 'delayed' || state === 'waiting-children')
      return view;
    failedReason = job.failedReason;
  }
  const input = known ?? (await storeCall(() => store.getInput(id)));
  if (!input || (tenant !== undefined && input.tenant !== tenant)) return null;
  if (await storeCall(() => store.hasResult(id))) {
    return { ...baseView(input, 'succeeded'), result_url: await store.presignResult(id) };
  }
  const ended = await storeCall(() => store.getEnded(id));
  if (ended) return { ...baseView(input, ended.status), attempts: ended.attempts, error: ended.error };
  if (failedReason !== undefined) return { ...baseView(input, 'failed'), error: errorFromReason(failedReason) };
  return baseView(input, 'queued'); // not in Redis (yet, or again): the reconciler enqueues it
}

/** Records a job that will never have a result: the dead-letter queue (for operators) and ended/{id}.json (for status). */
export async function deadLetter(
  deps: { store: JobStore; deadQueue: Queue; webhooks: WebhookEvents; log: Logger },
  id: string,
  error: { message: string; code: string },
  attempts: number,
  webhookUrl: string | undefined,
): Promise<void> {
  deps.log.error({ id, error, attempts }, 'job dead-lettered');
  await deps.deadQueue
    .add('dead', { id, error, attempts, failed_at: Date.now() }, { jobId: id })
    .catch((err: Error) => {
      deps.log.warn({ id, err: err.message }, 'could not add to the dead-letter queue');
    });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await deps.store.putEnded({ id, status: 'failed', error, ended_at: Date.now(), attempts });
      break;
    } catch (err) {
      deps.log.warn({ id, err: (err as Error).message }, 'could not write ended record; the reconciler will');
      await sleep(1000);
    }
  }
  await deps.webhooks.jobFinished(id, webhookUrl);
}
