// `deciserve bench submit`: send a quality suite as jobs, wait, judge, store per-sample + summary results in S3.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeCorpus, haystackText } from '../../mamba/passkey.ts';
import { readTokenizer } from '../../runner/engine-factory.ts';
import { createProgress } from '../../cli/progress.ts';
import { runnerDelta, scrape } from '../load/prom.ts';
import { JobsClient, type JobsEndpoint, type JobView } from './jobs-client.ts';
import { putText, suiteKey, type BenchBucket } from './s3.ts';
import { buildSuiteJobs, judgeSample, summarizeSuite, type SampleResult, type SuiteSpec, type SuiteSummary } from './suite.ts';

export interface SuiteRun {
  suite: string;
  spec: SuiteSpec;
  command: string;
  date: string;
  endpoint: { via: string; url: string };
  wallSeconds: number;
  summary: SuiteSummary;
  samples: SampleResult[];
  s3?: { bucket: string; samples: string; summary: string };
  /** The runner's /metrics difference over the suite (engine seconds and tokens by decimation), when submitted to a runner. */
  runner?: ReturnType<typeof runnerDelta>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function runSuite(opts: {
  spec: SuiteSpec;
  endpoint: JobsEndpoint;
  modelDir: string;
  bucket: BenchBucket | null;
  command: string;
  pollMs?: number;
  timeoutMs?: number;
  /** Resume (or re-collect) an earlier suite: the same spec and suite id give the same prompts and idempotency keys, so finished jobs are not run again. */
  suite?: string;
}): Promise<SuiteRun> {
  const { spec } = opts;
  const started = Date.now();
  const suite = opts.suite ?? `${new Date(started).toISOString().replace(/[:.]/g, '-')}-${spec.task}`;
  const tokenizer = await readTokenizer(opts.modelDir);
  // The model's held-out text (train/'s held-out split, digits removed): never seen in training.
  const haystackIds = encodeCorpus(tokenizer, haystackText(await readFile(join(opts.modelDir, 'haystack.txt'), 'utf8')));
  const jobs = buildSuiteJobs(spec, tokenizer, haystackIds, suite);
  const client = new JobsClient(opts.endpoint);
  const metricsUrl = opts.endpoint.via === 'runner' ? `${opts.endpoint.url}/metrics` : null;
  const before = metricsUrl ? await scrape(metricsUrl).catch(() => null) : null;

  const submitted: Array<{ job: (typeof jobs)[number]; view: JobView; at: number }> = [];
  for (const job of jobs) submitted.push({ job, view: await client.submit(job.body, `${suite}/${job.key}`), at: Date.now() });
  process.stderr.write(`bench ${suite}: ${jobs.length} jobs submitted to ${opts.endpoint.url}\n`);

  const progress = createProgress(jobs.length, `bench ${spec.task}`);
  const samples: SampleResult[] = [];
  let left = submitted;
  const deadline = Date.now() + (opts.timeoutMs ?? 6 * 3600_000);
  while (left.length > 0) {
    if (Date.now() > deadline) throw new Error(`bench ${suite}: ${left.length} jobs unfinished at the deadline`);
    await sleep(opts.pollMs ?? 1000);
    const still: typeof left = [];
    for (const s of left) {
      const view = await client.get(s.view.id).catch(() => null);
      if (!view || !['succeeded', 'failed', 'cancelled'].includes(view.status)) {
        still.push(s);
        continue;
      }
      const base = { key: s.job.key, task: spec.task, length: s.job.length, depth: s.job.depth, sample: s.job.sample, variant: s.job.variant, jobId: view.id, promptTokens: s.view.prompt_tokens, latencyMs: Date.now() - s.at };
      if (view.status !== 'succeeded') samples.push({ ...base, ok: false, error: view.error?.message ?? view.status });
      else samples.push({ ...base, ok: true, ...judgeSample(spec.task, s.job, await client.result(view)) });
      progress.tick(`${s.job.key}`);
    }
    left = still;
  }
  progress.stop();
  const after = metricsUrl && before ? await scrape(metricsUrl).catch(() => null) : null;
  samples.sort((a, b) => a.key.localeCompare(b.key));
  const run: SuiteRun = {
    suite, spec, command: opts.command, date: new Date(started).toISOString(), endpoint: { via: opts.endpoint.via, url: opts.endpoint.url },
    wallSeconds: Math.round((Date.now() - started) / 100) / 10, summary: summarizeSuite(spec.task, samples), samples,
    ...(before && after ? { runner: runnerDelta(before, after) } : {}),
  };
  if (opts.bucket) {
    const keys = { samples: suiteKey(opts.bucket, suite, 'samples.jsonl'), summary: suiteKey(opts.bucket, suite, 'summary.json') };
    await putText(opts.bucket, keys.samples, samples.map((s) => JSON.stringify(s)).join('\n') + '\n', 'application/x-ndjson');
    run.s3 = { bucket: opts.bucket.bucket, ...keys };
    await putText(opts.bucket, keys.summary, JSON.stringify({ ...run, samples: undefined }, null, 2), 'application/json');
  }
  return run;
}
