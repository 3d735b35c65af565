// Samples the runner's Prometheus registry into a short history for the live page: queue depth, active jobs,
// tokens/s, and the latency of jobs finished between two samples (from job_stage_seconds{stage="total"}).
import type { Registry } from 'prom-client';
import { parsePrometheus, total } from './prom-text.ts';

const P = 'deciserve_runner_';

export interface LivePoint {
  t: number;
  queue: Record<string, number>;
  /** Jobs inside running engine passes (BullMQ active). */
  active: number;
  passes: number;
  tokensPerSecond: number;
  jobsDone: number;
  /** Mean accepted → result-stored latency of the jobs finished since the previous point, seconds. */
  recentLatencyS: number | null;
  /** The same by stage (queue_wait, engine, …). */
  recentStagesS: Record<string, number>;
  engineSeconds: number;
}

export class LiveSampler {
  private readonly points: LivePoint[] = [];
  private last: { count: Record<string, number>; sum: Record<string, number> } | null = null;

  constructor(
    private readonly registry: Registry,
    private readonly keep = 600,
  ) {}

  async sample(now = Date.now()): Promise<LivePoint> {
    const s = parsePrometheus(await this.registry.metrics());
    const queue: Record<string, number> = {};
    for (const x of s) if (x.name === `${P}queue_jobs`) queue[x.labels.state ?? ''] = x.value;
    const count: Record<string, number> = {};
    const sum: Record<string, number> = {};
    for (const x of s) {
      const stage = x.labels.stage;
      if (!stage) continue;
      if (x.name === `${P}job_stage_seconds_count`) count[stage] = (count[stage] ?? 0) + x.value;
      if (x.name === `${P}job_stage_seconds_sum`) sum[stage] = (sum[stage] ?? 0) + x.value;
    }
    const recentStagesS: Record<string, number> = {};
    if (this.last) {
      for (const stage of Object.keys(count)) {
        const dn = count[stage]! - (this.last.count[stage] ?? 0);
        if (dn > 0) recentStagesS[stage] = (sum[stage]! - (this.last.sum[stage] ?? 0)) / dn;
      }
    }
    this.last = { count, sum };
    const point: LivePoint = {
      t: now,
      queue,
      active: queue.active ?? 0,
      passes: total(s, `${P}passes_total`),
      tokensPerSecond: total(s, `${P}tokens_per_second`),
      jobsDone: total(s, `${P}jobs_total`, { outcome: 'succeeded' }),
      recentLatencyS: recentStagesS.total ?? null,
      recentStagesS,
      engineSeconds: total(s, `${P}engine_seconds_total`),
    };
    this.points.push(point);
    if (this.points.length > this.keep) this.points.shift();
    return point;
  }

  history(): LivePoint[] {
    return this.points;
  }
}
