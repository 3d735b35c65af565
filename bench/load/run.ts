// The local load driver: autocannon sends a scenario's requests at its arrival rate (one instance per variant, run
// together, like k6's per-variant scenarios); jobs are then polled and their results fetched from S3.
import autocannon from 'autocannon';
import { cpus } from 'node:os';
import {
  completionBody,
  durationSeconds,
  jobBody,
  parseServerTiming,
  pickLength,
  promptText,
  TERMINAL_JOB_STATES,
  type Scenario,
  type ScenarioFile,
  type Variant,
} from '../scenarios/scenario.ts';
import { runnerDelta, scrape } from './prom.ts';
import { signedHeadersSync } from './sign-sync.ts';
import { summarize, type LatencySummary } from './stats.ts';

export interface DriverTarget {
  /** The edge API (worker/); completions and, with jobsVia=edge, jobs. */
  edgeUrl?: string;
  apiKey?: string;
  /** The runner; its /metrics feeds the cost model, and with jobsVia=runner jobs go to its signed /jobs. */
  runnerUrl?: string;
  runnerSecret?: string;
  jobsVia: 'edge' | 'runner';
}

export interface VariantRun {
  variant: Variant;
  requests: number;
  errors: number;
  statusCodes: Record<string, number>;
  throughputRps: number;
  latencyMs: LatencySummary;
  serverTimingMs: Record<string, LatencySummary>;
  /** Answers by the x-deciserve-ran-on header (edge, runner, …). */
  ranOn: Record<string, number>;
  jobs?: {
    submitted: number;
    succeeded: number;
    failed: number;
    timedOut: number;
    resultFetched: number;
    e2eMs: LatencySummary;
    byLength: Record<string, LatencySummary>;
  };
}

export interface RateStep {
  rate: number;
  durationS: number;
  variants: VariantRun[];
  /** Difference of the runner's /metrics across the step (engine seconds, S3 calls, tokens, stage means). */
  runner?: ReturnType<typeof runnerDelta>;
}

interface PendingJob {
  id: string;
  variant: Variant;
  length: number;
  acceptedAt: number;
}

type Progress = (line: string) => void;

function pathIsJob(s: Scenario, tokens: number): boolean {
  return s.target === 'runner' || tokens > (s.edgeMaxTokens ?? Infinity);
}

export async function runScenario(opts: {
  file: ScenarioFile;
  haystack: string;
  name: string;
  scenario: Scenario;
  rates: number[];
  target: DriverTarget;
  progress?: Progress;
}): Promise<RateStep[]> {
  const { scenario: s, target } = opts;
  const steps: RateStep[] = [];
  for (const rate of opts.rates) {
    const before = target.runnerUrl ? await scrape(`${target.runnerUrl}/metrics`) : null;
    const variants = await Promise.all(s.variants.map((v) => runVariant({ ...opts, rate, variant: v })));
    const after = target.runnerUrl ? await scrape(`${target.runnerUrl}/metrics`) : null;
    steps.push({
      rate,
      durationS: durationSeconds(s.duration),
      variants,
      ...(before && after ? { runner: runnerDelta(before, after) } : {}),
    });
  }
  return steps;
}

async function runVariant(opts: {
  file: ScenarioFile;
  haystack: string;
  scenario: Scenario;
  rate: number;
  variant: Variant;
  target: DriverTarget;
  progress?: Progress;
}): Promise<VariantRun> {
  const { file, haystack, scenario: s, rate, variant, target } = opts;
  const mix = file.lengthMixes[s.mix]!;
  const durationS = durationSeconds(s.duration);
  const amount = Math.max(1, Math.round(rate * durationS));
  const jobsBase = target.jobsVia === 'runner' ? target.runnerUrl : target.edgeUrl;
  const jobsPath = target.jobsVia === 'runner' ? '/jobs' : '/v1/jobs';
  const needsEdge = s.target === 'edge';
  const base = needsEdge ? target.edgeUrl : jobsBase;
  if (!base)
    throw new Error(
      `scenario needs ${needsEdge ? '--edge-url' : target.jobsVia === 'runner' ? '--runner-url' : '--edge-url'}`,
    );
  if (s.target === 'runner' || s.edgeMaxTokens !== undefined)
    if (!jobsBase) throw new Error('jobs need --runner-url (with --jobs-via runner) or --edge-url');

  const pending: PendingJob[] = [];
  const serverTiming: Record<string, number[]> = {};
  const latencies: number[] = [];
  const ranOn: Record<string, number> = {};
  let seq = 0;
  const headersFor = (method: string, path: string, body: string, job: boolean): Record<string, string> => {
    const h: Record<string, string> = { 'content-type': 'application/json' };
    if (job && target.jobsVia === 'runner')
      return { ...h, ...signedHeadersSync(target.runnerSecret ?? '', method, path, body) };
    if (target.apiKey) h.authorization = `Bearer ${target.apiKey}`;
    return h;
  };

  // autocannon's overallRate is an integer ≥ 1/s: at lower rates every arrival is its own one-request instance,
  // started on schedule (an open model, as k6's constant-arrival-rate).
  const fire = (n: number, connections: number, overallRate?: number) => {
    // Without a callback autocannon returns its tracker (an EventEmitter) made thenable.
    const instance = autocannon({
      url: base,
      connections,
      ...(overallRate ? { overallRate } : {}),
      amount: n,
      timeout: 120,
      requests: [
        {
          method: 'POST',
          setupRequest: (req, ctx) => {
            const context = ctx as Record<string, unknown>;
            const tokens = pickLength(mix, Math.random());
            const prompt = promptText(haystack, tokens, file.charsPerToken, Math.random() * haystack.length + seq++);
            const job = pathIsJob(s, tokens);
            const path = job ? jobsPath : '/v1/completions';
            const body = JSON.stringify(
              job
                ? jobBody(s, file.model, prompt, variant, { length: String(tokens) })
                : completionBody(s, file.model, prompt, variant),
            );
            context.tokens = tokens;
            context.job = job;
            return { ...req, method: 'POST', path, body, headers: headersFor('POST', path, body, job) };
          },
          onResponse: (status, body, ctx, headers) => {
            const context = ctx as Record<string, unknown>;
            const h = headers as Record<string, string | undefined>;
            const where = h['x-deciserve-ran-on'];
            if (where) ranOn[where] = (ranOn[where] ?? 0) + 1;
            for (const [stage, ms] of Object.entries(parseServerTiming(h['server-timing'] ?? h['Server-Timing'])))
              (serverTiming[stage] ??= []).push(ms);
            if (context.job && (status === 202 || status === 200)) {
              const id = (JSON.parse(body) as { id?: string }).id;
              if (id) pending.push({ id, variant, length: context.tokens as number, acceptedAt: Date.now() });
            }
          },
        },
      ],
    }) as unknown as autocannon.Instance & PromiseLike<autocannon.Result>;
    instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) =>
      latencies.push(responseTime),
    );
    return Promise.resolve(instance);
  };
  const ticker = setInterval(
    () => opts.progress?.(`${variant} @${rate}/s: ${latencies.length}/${amount} responses`),
    1000,
  );
  const started = Date.now();
  const results = await (rate >= 1
    ? Promise.all([fire(amount, Math.min(s.maxVUs, Math.max(1, s.preAllocatedVUs)), Math.round(rate))])
    : Promise.all(
        Array.from({ length: amount }, (_, i) =>
          new Promise<void>((r) => setTimeout(r, (1000 * i) / rate)).then(() => fire(1, 1)),
        ),
      )
  ).finally(() => clearInterval(ticker));
  const wallS = (Date.now() - started) / 1000;
  const result = {
    requests: { total: results.reduce((a, r) => a + r.requests.total, 0) },
    errors: results.reduce((a, r) => a + r.errors, 0),
    timeouts: results.reduce((a, r) => a + r.timeouts, 0),
    duration: rate >= 1 ? results[0]!.duration : Math.max(wallS, durationS),
  };
  const statusCodes: Record<string, number> = {};
  for (const r of results)
    for (const [code, v] of Object.entries(r.statusCodeStats ?? {}))
      statusCodes[code] = (statusCodes[code] ?? 0) + (v as { count: number }).count;
  const okCount = Object.entries(statusCodes)
    .filter(([c]) => c.startsWith('2'))
    .reduce((a, [, n]) => a + n, 0);
  const run: VariantRun = {
    variant,
    requests: result.requests.total,
    errors: result.errors + result.timeouts + (result.requests.total - okCount),
    statusCodes,
    throughputRps: Math.round((result.requests.total / Math.max(result.duration, 1e-9)) * 1000) / 1000,
    latencyMs: summarize(latencies),
    ranOn,
    serverTimingMs: Object.fromEntries(Object.entries(serverTiming).map(([k, v]) => [k, summarize(v)])),
  };
  if (s.target === 'runner' || s.edgeMaxTokens !== undefined)
    run.jobs = await waitForJobs(pending, { ...opts, jobsBase: jobsBase!, jobsPath, headersFor });
  return run;
}

async function waitForJobs(
  pending: PendingJob[],
  opts: {
    scenario: Scenario;
    variant: Variant;
    jobsBase: string;
    jobsPath: string;
    progress?: Progress;
    headersFor: (m: string, p: string, b: string, job: boolean) => Record<string, string>;
  },
): Promise<NonNullable<VariantRun['jobs']>> {
  const poll = opts.scenario.poll ?? { intervalMs: 2000, timeoutMs: 600_000 };
  const submitted = pending.length;
  const e2e: number[] = [];
  const byLength: Record<string, number[]> = {};
  let succeeded = 0;
  let failed = 0;
  let resultFetched = 0;
  const deadline = Date.now() + poll.timeoutMs;
  let left = [...pending];
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, poll.intervalMs));
    const still: PendingJob[] = [];
    for (const job of left) {
      const path = `${opts.jobsPath}/${job.id}`;
      const res = await fetch(opts.jobsBase + path, { headers: opts.headersFor('GET', path, '', true) }).catch(
        () => null,
      );
      const view = res?.ok ? ((await res.json()) as { status: string; result_url?: string }) : null;
      if (!view || !TERMINAL_JOB_STATES.includes(view.status)) {
        still.push(job);
        continue;
      }
      if (view.status !== 'succeeded' || !view.result_url) {
        failed++;
        continue;
      }
      const result = await fetch(view.result_url).catch(() => null); // the result comes from S3 (presigned URL)
      if (result?.ok) resultFetched++;
      await result?.arrayBuffer().catch(() => undefined);
      succeeded++;
      const ms = Date.now() - job.acceptedAt;
      e2e.push(ms);
      (byLength[String(job.length)] ??= []).push(ms);
    }
    left = still;
    opts.progress?.(`${opts.variant}: jobs ${submitted - left.length}/${submitted} done`);
  }
  return {
    submitted,
    succeeded,
    failed,
    timedOut: left.length,
    resultFetched,
    e2eMs: summarize(e2e),
    byLength: Object.fromEntries(Object.entries(byLength).map(([k, v]) => [k, summarize(v)])),
  };
}

export function machine() {
  return { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version };
}
