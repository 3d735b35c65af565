// The runner's /metrics around a run: scraped and diffed for the cost model (the text reader is the live page's,
// runner/live/prom-text.ts).
import { byLabel, parsePrometheus, total, type Sample } from '../../runner/live/prom-text.ts';

export async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url}: ${res.status}`);
  return parsePrometheus(await res.text());
}

const P = 'deciserve_runner_';

/** What the cost model needs from the runner, as the difference of two scrapes. */
export function runnerDelta(before: Sample[], after: Sample[]) {
  const d = (name: string, match: Record<string, string> = {}) =>
    total(after, P + name, match) - total(before, P + name, match);
  const stages: Record<string, { count: number; meanMs: number }> = {};
  for (const stage of ['queue_wait', 'load_input', 'engine', 'prefill', 'decode', 'write_result', 'total']) {
    const count = d('job_stage_seconds_count', { stage });
    if (count > 0) stages[stage] = { count, meanMs: (1000 * d('job_stage_seconds_sum', { stage })) / count };
  }
  const s3 = byLabel(after, P + 's3_requests_total', 'op');
  const s3Before = byLabel(before, P + 's3_requests_total', 'op');
  for (const k of Object.keys(s3)) s3[k] = s3[k]! - (s3Before[k] ?? 0);
  const byDecimation = Object.fromEntries(
    ['off', 'on'].map((dec) => [
      dec,
      {
        engineSeconds: d('engine_seconds_total', { decimation: dec }),
        promptTokens: d('tokens_total', { kind: 'prompt', decimation: dec }),
        completionTokens: d('tokens_total', { kind: 'completion', decimation: dec }),
      },
    ]),
  );
  return {
    byDecimation,
    jobsSucceeded: d('jobs_total', { outcome: 'succeeded' }),
    engineSeconds: d('engine_seconds_total'),
    passes: d('passes_total'),
    promptTokens: d('tokens_total', { kind: 'prompt' }),
    completionTokens: d('tokens_total', { kind: 'completion' }),
    s3Requests: s3,
    s3BytesOut: d('s3_bytes_total', { direction: 'out' }),
    s3BytesIn: d('s3_bytes_total', { direction: 'in' }),
    stages,
  };
}
