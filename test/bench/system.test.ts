// bench/ against the real local stack (radosgw + Redis + a runner on a tiny checkpoint, loopback only):
// the load driver's smoke run, quality suites run as one job each (`deciserve bench submit`) with results in S3, the
// static report and the runner's live page checked in Debian chromium (playwright-core), screenshots in test/.tmp/bench/.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCostReport } from '../../bench/cost/report.ts';
import { runLoad } from '../../bench/load/main.ts';
import { bucketFromEnv, getText } from '../../bench/quality/s3.ts';
import { runSuite } from '../../bench/quality/submit.ts';
import { buildReport } from '../../bench/report/build.ts';
import { cliInProcess } from '../cli-driver.ts';
import {
  ensureRadosgw,
  freshDir,
  REPO,
  runnerEnv,
  runTag,
  SECRET,
  spawnRunner,
  startRedis,
  writeTinyCheckpoint,
  JobClient,
  type RedisHandle,
  type RunnerProcess,
  type S3Env,
} from '../runner/harness.ts';

const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';

let s3: S3Env;
let redis: RedisHandle;
let runner: RunnerProcess;
let browser: Browser;
let out: string;
let bucketName: string;

beforeAll(async () => {
  out = await freshDir('bench');
  const modelDir = await writeTinyCheckpoint(join(out, 'tiny'));
  // Held-out text for passkey prompts and perplexity windows (digits stripped, as the shipped model's).
  await writeFile(
    join(modelDir, 'haystack.txt'),
    (await readFile(join(REPO, 'models/deciserve-mamba/haystack.txt'), 'utf8')).slice(0, 20_000),
  );
  const tag = runTag('bench');
  bucketName = tag
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 60);
  [s3, redis] = await Promise.all([ensureRadosgw(), startRedis('bench')]);
  runner = await spawnRunner(
    runnerEnv({ modelDir, redisUrl: redis.url, s3, bucket: bucketName, queue: tag }, { RUNNER_IDLE_POLL_MS: '100' }),
  );
  if (!existsSync(CHROMIUM)) await run(join(REPO, 'bench/install-browser.sh'), [], { timeout: 600_000 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
}, 900_000);

afterAll(async () => {
  await browser?.close();
  runner?.kill('SIGTERM');
  await runner?.exited;
  await redis?.stop();
});

describe('bench against the local stack', () => {
  it('the local driver runs the smoke scenario: jobs submitted at a rate, polled, results fetched from S3', async () => {
    const r = await runLoad({
      name: 'smoke-jobs',
      model: 'tiny',
      rates: [2],
      duration: '1s',
      target: { runnerUrl: runner.url, runnerSecret: SECRET, jobsVia: 'runner' },
      command: 'test',
    });
    expect(r.steps).toHaveLength(1);
    for (const v of r.steps[0]!.variants) {
      expect(v.requests).toBe(2);
      expect(v.jobs!.succeeded).toBe(v.jobs!.submitted);
      expect(v.jobs!.resultFetched).toBe(v.jobs!.succeeded);
      expect(v.jobs!.e2eMs.p95).toBeGreaterThan(0);
    }
    const delta = r.steps[0]!.runner!;
    expect(delta.byDecimation.off!.promptTokens).toBeGreaterThan(0);
    expect(delta.byDecimation.on!.promptTokens).toBeGreaterThan(0);
    expect(delta.engineSeconds).toBeGreaterThan(0);
    expect(Object.keys(delta.s3Requests).length).toBeGreaterThan(0);
    expect(r.thresholdsPassed).toBe(true);
    await mkdir(join(out, 'results'), { recursive: true });
    await writeFile(join(out, 'results/load-smoke-jobs.json'), JSON.stringify(r));
  }, 120_000);

  it('bench submit: a passkey and a perplexity suite each run as one job; per-sample and summary results are read back from S3', async () => {
    const bucket = { ...bucketFromEnv({ ...s3, S3_BUCKET: bucketName })!, prefix: '' };
    await mkdir(join(out, 'results'), { recursive: true });
    const outFile = join(out, 'results/quality-passkey.json');
    const args = [
      'bench',
      'submit',
      'passkey',
      '--runner-url',
      runner.url,
      '--model-id',
      'tiny',
      '--lengths',
      '160',
      '--depths',
      '0.5',
      '--samples',
      '1',
      '--resume',
      'sys-passkey',
      '--out',
      outFile,
    ];
    const submit = async () => {
      const saved = process.env.RUNNER_HMAC_SECRET;
      process.env.RUNNER_HMAC_SECRET = SECRET;
      try {
        return await cliInProcess(args);
      } finally {
        if (saved === undefined) delete process.env.RUNNER_HMAC_SECRET;
        else process.env.RUNNER_HMAC_SECRET = saved;
      }
    };
    const cli = await submit();
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/^mamba +160: \d+% \(n=1\)/m);
    expect(cli.stderr).toMatch(/bench sys-passkey: job job_\w+ queued/);
    const passkey = JSON.parse(await readFile(outFile, 'utf8'));
    expect(passkey).toMatchObject({
      suite: 'sys-passkey',
      spec: { task: 'passkey', lengths: [160], depths: [0.5] },
      endpoint: { via: 'runner' },
      s3: { bucket: bucketName, key: `results/${passkey.jobId}.json` },
    });
    expect(passkey.samples).toHaveLength(2);
    expect(passkey.samples.every((s: { ok: boolean; answer?: string }) => s.ok && typeof s.answer === 'string')).toBe(
      true,
    );
    expect(Object.keys(passkey.summary.byLength).sort()).toEqual(['decimamba', 'mamba']);
    // The file's samples and summary are the object the runner stored in S3.
    const stored = JSON.parse(await getText(bucket, passkey.s3.key));
    expect(stored).toMatchObject({
      id: passkey.jobId,
      object: 'bench_suite',
      summary: passkey.summary,
      samples: passkey.samples,
    });

    // --resume: the same suite id is the same idempotency key, so the finished job is collected, not run again.
    const ran = runner.succeeded().length;
    expect((await submit()).code).toBe(0);
    expect(JSON.parse(await readFile(outFile, 'utf8')).jobId).toBe(passkey.jobId);
    expect(runner.succeeded().length).toBe(ran);

    const endpoint = { via: 'runner' as const, url: runner.url, secret: SECRET };
    const ppl = await runSuite({
      spec: {
        task: 'perplexity',
        lengths: [200],
        samples: 1,
        seed: 0,
        variants: ['mamba', 'decimamba'],
        model: 'tiny',
      },
      endpoint,
      command: 'test',
      pollMs: 200,
    });
    expect(ppl.samples).toHaveLength(2);
    expect(ppl.samples.every((s) => s.ok && s.perplexity! > 1)).toBe(true);
    expect(ppl.runner!.byDecimation.on!.promptTokens).toBeGreaterThan(0);
    await writeFile(join(out, 'results/quality-perplexity.json'), JSON.stringify(ppl));
  }, 120_000);

  it('the static report renders every chart with data in chromium', async () => {
    const results = join(out, 'results');
    await copyFile(join(REPO, 'bench/results/passkey-perplexity.json'), join(results, 'passkey-perplexity.json'));
    await writeFile(join(results, 'cost.json'), JSON.stringify(await buildCostReport('deciserve bench cost')));
    const { out: html, charts } = await buildReport({
      resultsDir: results,
      out: join(out, 'report.html'),
      command: 'test',
      fromS3: false,
    });
    expect(charts).toEqual(
      expect.arrayContaining([
        'latency-vs-load',
        'throughput',
        'cost-vs-length',
        'passkey-vs-length',
        'perplexity-vs-length',
      ]),
    );
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`file://${html}`);
    const rendered = await page.evaluate(() => {
      const all = (
        window as unknown as {
          __charts: Record<string, { data: { datasets: Array<{ data: unknown[] }> }; canvas: HTMLCanvasElement }>;
        }
      ).__charts;
      return Object.fromEntries(
        Object.entries(all).map(([id, c]) => [
          id,
          {
            datasets: c.data.datasets.length,
            points: c.data.datasets.reduce((a, d) => a + d.data.length, 0),
            width: c.canvas.width,
          },
        ]),
      );
    });
    expect(errors).toEqual([]);
    for (const id of charts) {
      expect(rendered[id]!.datasets, id).toBeGreaterThan(0);
      expect(rendered[id]!.points, id).toBeGreaterThan(0);
      expect(rendered[id]!.width, id).toBeGreaterThan(100);
    }
    expect(await page.locator('.src').count()).toBe(charts.length);
    await page.screenshot({ path: join(out, 'report.png'), fullPage: true });
    await page.close();
  }, 120_000);

  it('the runner serves a live page that updates without reloading', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(`${runner.url}/live`);
    const client = new JobClient(runner.url);
    for (let i = 0; i < 4; i++)
      await client.submit({
        type: 'completion',
        model: 'tiny',
        prompt: `live page job ${i} `.repeat(20),
        max_tokens: 4,
      });
    await page.waitForFunction(
      () =>
        Number(document.getElementById('k-done')?.textContent) >= 6 &&
        (window as unknown as { __polls: number }).__polls >= 3,
      null,
      { timeout: 60_000 },
    );
    const state = await page.evaluate(() => {
      const w = window as unknown as {
        __charts: Record<string, { data: { labels: unknown[]; datasets: Array<{ data: Array<number | null> }> } }>;
        __polls: number;
      };
      return {
        polls: w.__polls,
        labels: w.__charts.tps!.data.labels.length,
        latency: w.__charts.latency!.data.datasets[0]!.data.filter((x) => x !== null).length,
      };
    });
    expect(state.labels).toBeGreaterThanOrEqual(3);
    expect(state.latency).toBeGreaterThan(0);
    await page.screenshot({ path: join(out, 'live.png'), fullPage: true });
    await page.close();
  }, 120_000);
});
