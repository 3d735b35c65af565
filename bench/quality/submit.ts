// `deciserve bench submit`: a quality suite is one runner job (`type: "suite"`, runner/pass/suite.ts). The runner builds the
// prompts from its model's held-out text, runs and judges every sample, and stores one result object (per-sample
// records + summary) in S3; this side submits, waits, and reads that object back through the job's result URL.
import { runnerDelta, scrape } from '../load/prom.ts';
import type { SampleResult, SuiteResult, SuiteSpec, SuiteSummary } from '../../protocol/suite-spec.ts';
import { JobsClient, type JobsEndpoint, type JobView } from './jobs-client.ts';
import { s3Location } from './s3.ts';

export interface SuiteRun {
  suite: string;
  /** The runner job that ran the suite. */
  jobId: string;
  spec: SuiteSpec;
  command: string;
  date: string;
  endpoint: { via: string; url: string };
  wallSeconds: number;
  summary: SuiteSummary;
  samples: SampleResult[];
  /** Where the runner stored the suite's result object (results/{jobId}.json). */
  s3: { bucket: string; key: string };
  engine: string;
  /** The runner's /metrics difference over the suite (engine seconds and tokens by decimation), when submitted to a runner. */
  runner?: ReturnType<typeof runnerDelta>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DONE = ['succeeded', 'failed', 'cancelled'];

/** The suite job's body: the spec without the model (that is the job's `model`); depths only for passkey. */
export function suiteJobBody(spec: SuiteSpec, suite: string): Record<string, unknown> {
  const { task, lengths, depths, samples, seed, variants } = spec;
  return {
    type: 'suite',
    model: spec.model,
    suite: { task, lengths, ...(task === 'passkey' ? { depths } : {}), samples, seed, variants },
    metadata: { suite },
  };
}

export async function runSuite(opts: {
  spec: SuiteSpec;
  endpoint: JobsEndpoint;
  command: string;
  pollMs?: number;
  /** A progress line on stderr this often. */
  progressMs?: number;
  timeoutMs?: number;
  /** Resume (or re-collect) an earlier suite: the same suite id and spec give the same idempotency key, so the runner returns the same job instead of running it again. */
  suite?: string;
  /** S3_BUCKET, to read the result URL's bucket when it is virtual-hosted. */
  bucket?: string;
}): Promise<SuiteRun> {
  const { spec } = opts;
  const started = Date.now();
  const suite = opts.suite ?? `${new Date(started).toISOString().replace(/[:.]/g, '-')}-${spec.task}`;
  const client = new JobsClient(opts.endpoint);
  const metricsUrl = opts.endpoint.via === 'runner' ? `${opts.endpoint.url}/metrics` : null;
  const before = metricsUrl ? await scrape(metricsUrl).catch(() => null) : null;

  let view: JobView = await client.submit(suiteJobBody(spec, suite), `bench-suite/${suite}`);
  const say = (what: string) =>
    process.stderr.write(`bench ${suite}: job ${view.id} ${what}, ${Math.round((Date.now() - started) / 1000)} s\n`);
  say(`${view.status} (${view.prompt_tokens ?? '?'} prompt tokens) at ${opts.endpoint.url}`);
  const deadline = Date.now() + (opts.timeoutMs ?? 24 * 3600_000);
  let lastSaid = Date.now();
  let pollError = '';
  while (!DONE.includes(view.status)) {
    if (Date.now() > deadline) throw new Error(`bench ${suite}: job ${view.id} still ${view.status} at the deadline`);
    await sleep(opts.pollMs ?? 2000);
    // A runner restart or a network blip is not the end of the suite: keep polling until the deadline.
    view = await client.get(view.id).then(
      (v) => ((pollError = ''), v),
      (err: Error) => ((pollError = err.message), view),
    );
    if (Date.now() - lastSaid >= (opts.progressMs ?? 10_000)) {
      say(view.status + (pollError ? ` (last poll failed: ${pollError})` : ''));
      lastSaid = Date.now();
    }
  }
  if (view.status !== 'succeeded')
    throw new Error(
      `bench ${suite}: job ${view.id} ${view.status}: ${view.error ? `${view.error.code}: ${view.error.message}` : 'no error given'}`,
    );
  say('succeeded; reading the result from S3');
  const result = await client.result<SuiteResult>(view);
  const after = metricsUrl && before ? await scrape(metricsUrl).catch(() => null) : null;
  return {
    suite,
    jobId: view.id,
    spec: result.spec,
    command: opts.command,
    date: new Date(started).toISOString(),
    endpoint: { via: opts.endpoint.via, url: opts.endpoint.url },
    wallSeconds: Math.round((Date.now() - started) / 100) / 10,
    summary: result.summary,
    samples: result.samples,
    s3: s3Location(view.result_url!, opts.bucket),
    engine: result.deciserve.engine,
    ...(before && after ? { runner: runnerDelta(before, after) } : {}),
  };
}
