// The worker half: takes jobs from BullMQ (manual fetching, so a pass is cut by a token budget), runs each pass on
// the engine thread, writes results to S3 once, then completes, retries or dead-letters each job.
//
// Crash safety: a job's lock is renewed while it is held; if this process dies the lock expires and another
// runner's stalled check puts the job back. Results are written with a conditional PUT before the job completes,
// so a job run twice still has exactly one stored result, and a run that finds a result just completes.
import { randomUUID } from 'node:crypto';
import { UnrecoverableError, type Job, type Queue, type Worker } from 'bullmq';
import type { Logger } from 'pino';
import type { RunnerConfig } from '../config.ts';
import type { EngineHost } from '../engine/engine-host.ts';
import type { QueueJobData } from '../store/jobs.ts';
import { deadLetter } from '../store/job-status.ts';
import type { RunnerMetrics } from '../metrics.ts';
import type { PassItem, PassOutcome } from './pass-types.ts';
import type { JobStore } from '../store/s3-store.ts';
import type { WebhookEvents } from '../store/jobs.ts';

interface Held {
  job: Job<QueueJobData>;
  token: string;
}

export interface BatchLoopDeps {
  config: RunnerConfig;
  worker: Worker<QueueJobData>;
  /** Where passes run: the engine thread (engine-host.ts); tests may run a pass in-process. */
  engine: Pick<EngineHost, 'run' | 'engineName'>;
  store: JobStore;
  deadQueue: Queue;
  webhooks: WebhookEvents;
  metrics: RunnerMetrics;
  log: Logger;
}

/** Whether `next` joins a pass already holding `jobs` jobs and `tokens` tokens. A pass always takes its first job. */
export function fitsPass(
  pass: { jobs: number; tokens: number },
  nextTokens: number,
  budget: { maxTokens: number; maxJobs: number },
): boolean {
  if (pass.jobs === 0) return true;
  return pass.jobs < budget.maxJobs && pass.tokens + nextTokens <= budget.maxTokens;
}

export class BatchLoop {
  private stopping = false;
  private readonly held = new Map<string, Held>();
  private lockTimer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  private lastPassDone = 0;
  /** Jobs finished by this process (tests and logs). */
  completed = 0;

  constructor(private readonly deps: BatchLoopDeps) {}

  stop(): void {
    this.stopping = true;
    this.wake?.();
  }

  async run(): Promise<void> {
    const { config, log } = this.deps;
    this.lockTimer = setInterval(() => void this.renewLocks(), Math.max(100, config.jobs.lockMs / 3));
    // Up to config.batch.pipeline passes in flight: the engine thread runs one at a time (runner/pass/pass.ts) but
    // loads and tokenizes the next while the current one is on the engine.
    const inFlight = new Set<Promise<void>>();
    try {
      while (!this.stopping) {
        const first = await this.fetch(true);
        if (!first) continue;
        const pass = [first];
        let tokens = first.job.data.cost_tokens;
        while (!this.stopping && pass.length < config.batch.maxJobs) {
          const next = await this.fetch(false);
          if (!next) break;
          if (!fitsPass({ jobs: pass.length, tokens }, next.job.data.cost_tokens, config.batch)) {
            // Over budget: give it back rather than sit on it, so an idle runner can take it now.
            await this.release(next);
            break;
          }
          pass.push(next);
          tokens += next.job.data.cost_tokens;
        }
        const running: Promise<void> = this.runHeldPass(pass, tokens)
          .catch((err: Error) => log.error({ err: err.message }, 'pass failed outside its jobs'))
          .finally(() => inFlight.delete(running));
        inFlight.add(running);
        if (inFlight.size >= config.batch.pipeline) await Promise.race(inFlight);
      }
    } finally {
      await Promise.all(inFlight); // passes already on the engine finish and store their results
      for (const h of [...this.held.values()]) await this.release(h);
      clearInterval(this.lockTimer);
    }
  }

  private async fetch(block: boolean): Promise<Held | null> {
    const token = randomUUID();
    try {
      const job = (await this.deps.worker.getNextJob(token, { block })) as Job<QueueJobData> | undefined;
      if (!job) return null;
      const held = { job, token };
      this.held.set(job.id!, held);
      if (this.stopping) {
        await this.release(held); // arrived after SIGTERM: take nothing new
        return null;
      }
      return held;
    } catch (err) {
      if (this.stopping) return null;
      this.deps.log.warn({ err: (err as Error).message }, 'fetching a job failed (Redis away?); retrying');
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, 1000);
      });
      return null;
    }
  }

  /** Puts a job we hold but will not run back in the queue, untouched. */
  private async release(h: Held): Promise<void> {
    this.held.delete(h.job.id!);
    try {
      await h.job.moveToWait(h.token);
      this.deps.metrics.jobs.inc({ type: h.job.data.type, outcome: 'released' });
    } catch (err) {
      this.deps.log.warn({ id: h.job.id, err: (err as Error).message }, 'could not release job; its lock will expire');
    }
  }

  private async renewLocks(): Promise<void> {
    if (this.held.size === 0) return;
    const list = [...this.held.values()];
    try {
      const lost = await this.deps.worker.extendJobLocks(
        list.map((h) => h.job.id!),
        list.map((h) => h.token),
        this.deps.config.jobs.lockMs,
      );
      if (lost.length > 0) this.deps.log.warn({ ids: lost }, 'lost job locks (another runner may take these jobs)');
    } catch (err) {
      this.deps.log.warn({ err: (err as Error).message }, 'lock renewal failed');
    }
  }

  private async runHeldPass(pass: Held[], tokens: number): Promise<void> {
    const { metrics, log, store } = this.deps;
    const started = Date.now();
    metrics.passes.inc();
    metrics.batchJobs.observe(pass.length);
    metrics.batchTokens.observe(tokens);
    log.info({ jobs: pass.map((h) => h.job.id), tokens }, 'pass start');

    // Load inputs; a job whose result already exists (a retry after a crash) just completes.
    const runnable: Array<{ held: Held; item: PassItem }> = [];
    await Promise.all(
      pass.map(async (held) => {
        const { id, type, created_at } = held.job.data;
        metrics.jobStageSeconds.observe({ stage: 'queue_wait', type }, (started - created_at) / 1000);
        try {
          const t0 = Date.now();
          if (await store.hasResult(id)) {
            await this.complete(held, 'duplicate');
            return;
          }
          const input = await store.getInput(id);
          metrics.jobStageSeconds.observe({ stage: 'load_input', type }, (Date.now() - t0) / 1000);
          if (!input) {
            await this.fail(held, { message: 'job input is missing from storage', code: 'input_missing' }, false);
            return;
          }
          const plan = input.plan ? { plan: input.plan } : {};
          runnable.push({ held, item: { id, request: input.request, createdAt: input.created_at, ...plan } });
        } catch (err) {
          await this.fail(held, { message: (err as Error).message, code: 'storage_unavailable' }, true);
        }
      }),
    );
    if (runnable.length === 0) return;

    let outcomes: PassOutcome[];
    const t0 = Date.now();
    try {
      outcomes = await this.deps.engine.run(runnable.map((r) => r.item));
    } catch (err) {
      for (const { held } of runnable)
        await this.fail(held, { message: (err as Error).message, code: 'engine_error' }, true);
      return;
    }
    // Passes finish in order on the engine thread; with another in flight, this one's engine time starts when that
    // one's ended, not when this one was sent.
    const done = Date.now();
    const engineSeconds = (done - Math.max(t0, this.lastPassDone)) / 1000;
    this.lastPassDone = done;
    let passTokens = 0;
    for (const o of outcomes) if (o.ok) passTokens += o.stats.promptTokens + o.stats.completionTokens;
    if (engineSeconds > 0) metrics.tokensPerSecond.set(passTokens / engineSeconds);

    await Promise.all(
      outcomes.map(async (outcome, i) => {
        const held = runnable[i]!.held;
        if (!outcome.ok) return this.fail(held, outcome.error, outcome.retryable);
        this.recordStats(held, outcome);
        try {
          const t1 = Date.now();
          const written = await store.putResultOnce(outcome.id, outcome.result);
          metrics.jobStageSeconds.observe(
            { stage: 'write_result', type: held.job.data.type },
            (Date.now() - t1) / 1000,
          );
          await this.complete(held, written === 'created' ? 'succeeded' : 'duplicate');
        } catch (err) {
          await this.fail(held, { message: (err as Error).message, code: 'storage_unavailable' }, true);
        }
      }),
    );
    log.info(
      {
        jobs: pass.length,
        ms: Date.now() - started,
        tokens_per_s: Math.round(passTokens / Math.max(engineSeconds, 1e-3)),
      },
      'pass done',
    );
  }

  private recordStats(held: Held, outcome: Extract<PassOutcome, { ok: true }>): void {
    const { metrics } = this.deps;
    const { stats } = outcome;
    const decimation = stats.decimated ? 'on' : 'off';
    const type = held.job.data.type;
    metrics.tokens.inc({ kind: 'prompt', decimation }, stats.promptTokens);
    if (stats.completionTokens) metrics.tokens.inc({ kind: 'completion', decimation }, stats.completionTokens);
    if (stats.scoredTokens) metrics.tokens.inc({ kind: 'scored', decimation }, stats.scoredTokens);
    metrics.keptTokens.inc({ decimation }, stats.keptTokens);
    const engineMs = stats.prefillMs + stats.decodeMs;
    metrics.engineSeconds.inc(
      {
        engine: this.deps.engine.engineName,
        device: this.deps.engine.engineName.startsWith('cuda') ? 'gpu' : 'cpu',
        decimation,
      },
      engineMs / 1000,
    );
    metrics.jobStageSeconds.observe({ stage: 'engine', type }, engineMs / 1000);
    metrics.jobStageSeconds.observe({ stage: 'prefill', type }, stats.prefillMs / 1000);
    if (stats.decodeMs) metrics.jobStageSeconds.observe({ stage: 'decode', type }, stats.decodeMs / 1000);
  }

  private async complete(held: Held, outcome: 'succeeded' | 'duplicate'): Promise<void> {
    const { job, token } = held;
    const { metrics, log } = this.deps;
    try {
      await job.moveToCompleted({ result: this.deps.store.key('results', job.id!) }, token, false);
      this.held.delete(job.id!);
      this.completed++;
      metrics.jobs.inc({ type: job.data.type, outcome });
      metrics.jobStageSeconds.observe(
        { stage: 'total', type: job.data.type },
        (Date.now() - job.data.created_at) / 1000,
      );
      log.info({ id: job.id, outcome, attempt: job.attemptsStarted }, 'job completed');
      // Also for duplicates: the attempt that stored the result may have died before queueing the webhook.
      // The webhook queue dedups by job id, and receivers get at-least-once delivery anyway.
      await this.deps.webhooks.jobFinished(job.id!, job.data.webhook_url);
    } catch (err) {
      // The result is stored; if Redis lost our lock or is away, the job comes back and completes as a duplicate.
      this.held.delete(job.id!);
      log.warn(
        { id: job.id, err: (err as Error).message },
        'could not mark job completed; it will be retried and found done',
      );
    }
  }

  private async fail(held: Held, error: { message: string; code: string }, retryable: boolean): Promise<void> {
    const { job, token } = held;
    const { metrics, log } = this.deps;
    const attempt = job.attemptsMade + 1; // read before moveToFailed, which counts this attempt in attemptsMade
    const final = !retryable || attempt >= (job.opts.attempts ?? 1);
    // BullMQ keeps only a message: prefix the code so status reads can report it before ended/{id}.json exists.
    const reason = `${error.code}: ${error.message}`;
    const err = retryable ? new Error(reason) : new UnrecoverableError(reason);
    try {
      await job.moveToFailed(err, token, false);
      this.held.delete(job.id!);
    } catch (moveErr) {
      this.held.delete(job.id!);
      log.warn(
        { id: job.id, err: (moveErr as Error).message },
        'could not mark job failed; its lock will expire and it will be retried',
      );
      return;
    }
    if (!final) {
      metrics.jobs.inc({ type: job.data.type, outcome: 'retried' });
      log.warn({ id: job.id, attempt, error }, 'job attempt failed; will retry');
      return;
    }
    metrics.jobs.inc({ type: job.data.type, outcome: 'dead_lettered' });
    await deadLetter(this.deps, job.id!, error, attempt, job.data.webhook_url);
  }
}
