// The job API's long-poll: `GET /jobs/:id?wait=<s>` answers when the job ends or the wait runs out, so the edge makes
// one request per wait instead of polling. BullMQ's QueueEvents (a Redis stream) wakes a job's waiters when it
// completes, fails or is removed; a re-read every few seconds covers what no event reports (an S3-only state, an event
// lost while Redis was away).
import type { QueueEvents } from 'bullmq';
import { type JobView, MAX_JOB_WAIT_S } from '../../protocol/job-view.ts';

const ENDED = new Set<JobView['status']>(['succeeded', 'failed', 'cancelled']);

export class JobWaiters {
  private readonly waiting = new Map<string, Set<() => void>>();
  private closed = false;

  constructor(
    private readonly events: QueueEvents | null,
    private readonly recheckMs = 2000,
  ) {
    for (const event of ['completed', 'failed', 'removed'] as const)
      events?.on(event, ({ jobId }: { jobId: string }) => this.wake(jobId));
  }

  /**
   * Reads the job's view until it has ended, `deadline` (epoch ms) passes or the runner closes; returns the last view
   * (null: no such job for this caller).
   */
  async until(id: string, deadline: number, read: () => Promise<JobView | null>): Promise<JobView | null> {
    for (;;) {
      // Armed before the read, so an event that lands between the read and the sleep still wakes this waiter.
      const woken = this.arm(id);
      const view = await read().catch((err: unknown) => {
        woken.cancel();
        throw err;
      });
      const left = deadline - Date.now();
      if (!view || ENDED.has(view.status) || left <= 0 || this.closed) {
        woken.cancel();
        return view;
      }
      await woken.within(Math.min(left, this.recheckMs));
    }
  }

  /** Answers every waiter now (a draining runner should not hold requests open). */
  async close(): Promise<void> {
    this.closed = true;
    for (const id of [...this.waiting.keys()]) this.wake(id);
    await this.events?.close();
  }

  private wake(id: string): void {
    for (const resolve of this.waiting.get(id) ?? []) resolve();
  }

  private arm(id: string) {
    let resolve!: () => void;
    const fired = new Promise<void>((r) => (resolve = r));
    const set = this.waiting.get(id) ?? new Set();
    this.waiting.set(id, set.add(resolve));
    const cancel = () => {
      set.delete(resolve);
      if (set.size === 0 && this.waiting.get(id) === set) this.waiting.delete(id);
    };
    const within = async (ms: number) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([fired, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
      clearTimeout(timer);
      cancel();
    };
    return { cancel, within };
  }
}

/** `?wait=` in seconds (0 to MAX_JOB_WAIT_S, up to millisecond precision); null when absent, 'invalid' when malformed. */
export function parseWait(raw: string | undefined): number | null | 'invalid' {
  if (raw === undefined) return null;
  if (!/^\d{1,2}(\.\d{1,3})?$/.test(raw)) return 'invalid';
  const seconds = Number(raw);
  return seconds <= MAX_JOB_WAIT_S ? seconds : 'invalid';
}
