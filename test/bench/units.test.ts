// bench/: the shared scenario file, the k6 scripts' types, the driver's helpers, the cost model, the report's charts.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  breakEven,
  decimatedWorkFraction,
  edgeRequestDollars,
  storageDollars,
  type Prices,
} from '../../bench/cost/model.ts';
import { buildCostReport } from '../../bench/cost/report.ts';
import { runnerDelta } from '../../bench/load/prom.ts';
import { parsePrometheus } from '../../runner/live/prom-text.ts';
import { loadScenarioFile, REPO } from '../../bench/load/scenarios.ts';
import { signedHeadersSync } from '../../bench/load/sign-sync.ts';
import { percentile, summarize } from '../../bench/load/stats.ts';
import { checkThresholds } from '../../bench/load/main.ts';
import { loadCharts } from '../../bench/report/charts.ts';
import { durationSeconds, parseServerTiming, pickLength, promptText } from '../../bench/scenarios/scenario.ts';
import { verifySignature } from '../../protocol/signing.ts';
import prices from '../../bench/cost/prices.json' with { type: 'json' };

const run = promisify(execFile);

describe('scenarios (one definition for k6 and the local driver)', () => {
  it('every scenario names an existing length mix, variants and thresholds', () => {
    const file = loadScenarioFile();
    expect(Object.keys(file.scenarios)).toEqual(
      expect.arrayContaining(['edge-short', 'edge-stream', 'long-jobs', 'mixed', 'smoke-jobs']),
    );
    for (const s of Object.values(file.scenarios)) {
      expect(file.lengthMixes[s.mix]).toBeDefined();
      expect(s.thresholds.p95Ms).toBeLessThanOrEqual(s.thresholds.p99Ms);
      expect(durationSeconds(s.duration)).toBeGreaterThan(0);
    }
  });

  it('picks lengths by weight and cuts prompts of the right size', () => {
    const mix = [
      { tokens: 10, weight: 1 },
      { tokens: 20, weight: 3 },
    ];
    expect(pickLength(mix, 0)).toBe(10);
    expect(pickLength(mix, 0.24)).toBe(10);
    expect(pickLength(mix, 0.26)).toBe(20);
    expect(pickLength(mix, 0.9999)).toBe(20);
    expect(promptText('abcdef', 4, 2, 4)).toBe('efabcdef');
  });

  it('parses Server-Timing', () => {
    expect(parseServerTiming('tokenize;dur=1.5, engine;desc="onnx";dur=20, edge')).toEqual({
      tokenize: 1.5,
      engine: 20,
    });
    expect(parseServerTiming(undefined)).toEqual({});
    expect(
      parseServerTiming('route;desc="edge: 3 tokens, 51 ms",prefill;dur=801.7;desc="prompt, prefill",total;dur=900'),
    ).toEqual({ prefill: 801.7, total: 900 });
  });

  it('the k6 scripts type-check against @types/k6', async () => {
    await run(process.execPath, [`${REPO}/node_modules/typescript/bin/tsc`, '-p', `${REPO}/bench/k6`], {
      cwd: REPO,
      timeout: 120_000,
    });
  }, 120_000);
});

describe('local driver helpers', () => {
  it('signs runner requests synchronously exactly as protocol/signing.ts verifies them', async () => {
    const body = '{"type":"completion"}';
    const h = signedHeadersSync('a-secret-of-16+chars', 'POST', '/jobs', body);
    const parts = {
      timestamp: Number(h['x-deciserve-timestamp']),
      nonce: h['x-deciserve-nonce']!,
      method: 'POST',
      path: '/jobs',
      body: new TextEncoder().encode(body),
    };
    expect(await verifySignature('a-secret-of-16+chars', parts, h['x-deciserve-signature']!)).toBe(true);
    expect(await verifySignature('another-secret-0000', parts, h['x-deciserve-signature']!)).toBe(false);
  });

  it('percentiles are nearest-rank', () => {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(v, 95)).toBe(95);
    expect(percentile(v, 99)).toBe(99);
    expect(summarize([3, 1, 2])).toMatchObject({ count: 3, p50: 2, max: 3, mean: 2 });
  });

  it('diffs two runner /metrics scrapes by decimation and S3 operation', () => {
    const a = parsePrometheus(
      'deciserve_runner_engine_seconds_total{engine="reference",device="cpu",decimation="on"} 1\ndeciserve_runner_s3_requests_total{op="put_result",outcome="ok"} 2\n',
    );
    const b = parsePrometheus(
      [
        'deciserve_runner_engine_seconds_total{engine="reference",device="cpu",decimation="on"} 4',
        'deciserve_runner_tokens_total{kind="prompt",decimation="on"} 300',
        'deciserve_runner_s3_requests_total{op="put_result",outcome="ok"} 5',
        'deciserve_runner_job_stage_seconds_sum{stage="total",type="completion"} 6',
        'deciserve_runner_job_stage_seconds_count{stage="total",type="completion"} 3',
      ].join('\n'),
    );
    const d = runnerDelta(a, b);
    expect(d.byDecimation.on).toMatchObject({ engineSeconds: 3, promptTokens: 300 });
    expect(d.s3Requests.put_result).toBe(3);
    expect(d.stages.total).toEqual({ count: 3, meanMs: 2000 });
  });

  it('checks thresholds on job latency, submit latency and errors', () => {
    const s = loadScenarioFile().scenarios['smoke-jobs']!;
    const lat = summarize([10, 20]);
    const ok = checkThresholds(s, [
      {
        rate: 1,
        durationS: 1,
        variants: [
          {
            variant: 'mamba',
            requests: 2,
            errors: 0,
            statusCodes: {},
            throughputRps: 1,
            latencyMs: lat,
            serverTimingMs: {},
            ranOn: {},
            jobs: { submitted: 2, succeeded: 2, failed: 0, timedOut: 0, resultFetched: 2, e2eMs: lat, byLength: {} },
          },
        ],
      },
    ]);
    expect(ok.every((t) => t.passed)).toBe(true);
    const bad = checkThresholds(s, [
      {
        rate: 1,
        durationS: 1,
        variants: [
          {
            variant: 'mamba',
            requests: 2,
            errors: 0,
            statusCodes: {},
            throughputRps: 1,
            latencyMs: lat,
            serverTimingMs: {},
            ranOn: {},
            jobs: { submitted: 2, succeeded: 1, failed: 1, timedOut: 0, resultFetched: 1, e2eMs: lat, byLength: {} },
          },
        ],
      },
    ]);
    expect(bad.some((t) => !t.passed)).toBe(true);
  });
});

describe('cost model', () => {
  const p = prices as unknown as Prices;

  it('every price names its source and date', () => {
    for (const entry of [p.workers, ...p.gpu, ...p.cpu, p.storage.r2, p.storage.s3] as Array<{
      source?: string;
      asOf?: string;
    }>) {
      expect(entry.source).toMatch(/^https:\/\//);
      expect(entry.asOf).toMatch(/^\d{4}-\d{2}/);
    }
  });

  it('DeciMamba saves only the layers after the decimating one', () => {
    const d = { nLayer: 12, layer: 11, lBase: 2000, minSeqLen: 20 };
    expect(decimatedWorkFraction(1000, d)).toBe(1);
    expect(decimatedWorkFraction(64000, d)).toBe(1);
    expect(decimatedWorkFraction(64000, { ...d, layer: 5 })).toBeCloseTo((6 * 64000 + 6 * 2000) / (12 * 64000));
  });

  it('prices an edge request from CPU-ms and storage from class A/B calls', () => {
    const e = edgeRequestDollars(
      p,
      {
        id: 'e',
        label: 'e',
        prefillTps: 1000,
        decodeTps: 100,
        perHour: 0,
        utilization: 1,
        kind: 'measured',
        source: '',
      },
      { promptTokens: 1000, newTokens: 10 },
    );
    expect(e.cpuMs).toBeCloseTo(1100);
    expect(e.dollars).toBeCloseTo(0.3e-6 + 1100 * 0.02e-6);
    expect(storageDollars(p, 'r2', { put_result: 1e6, get_input: 1e6 }, 0, 0)).toBeCloseTo(4.5 + 0.36);
    expect(
      breakEven(
        [1, 4, 5, 8],
        (x) => 10 - x,
        (x) => x,
      ),
    ).toBe(5);
    expect(
      breakEven(
        [1, 2],
        () => 10,
        () => 1,
      ),
    ).toBeNull();
  });

  it('builds the cost report from the committed measurements, GPU rows marked as estimates', async () => {
    const r = await buildCostReport('test');
    expect(r.headline.length).toBeGreaterThanOrEqual(5);
    expect(
      r.throughputs
        .filter((t) => t.id.startsWith('aws-g') || t.id.startsWith('lambda'))
        .every((t) => t.kind === 'estimate'),
    ).toBe(true);
    expect(r.jobs.length).toBeGreaterThan(0);
    // accuracy comes from the model's own DeciMamba setting (layer and L_base chosen by train/evaluate.py)
    const at64 = r.perCorrect.find((x) => x.length === 64000)!;
    const pp = JSON.parse(
      (await import('node:fs')).readFileSync(`${REPO}/bench/results/passkey-perplexity.json`, 'utf8'),
    );
    const cells = Object.values(
      pp.passkey[`decimamba_layer${pp.best_layer}_lbase${pp.best_lbase}`]['64000'],
    ) as number[];
    expect(at64.accuracy.decimamba).toBeCloseTo(cells.reduce((a, b) => a + b, 0) / cells.length, 3);
    // the H200 row is measured through the runner's pass code; estimates elsewhere are scaled from it
    const h100 = r.throughputs.find((t) => t.id === 'lambda-1xH100-PCIe')!;
    expect(h100.source).toMatch(/runner-gpu-check-bf16\.json/);
    expect(r.throughputs.find((t) => t.id === 'cpu-runner-onnx')?.kind).toBe('measured');
  });
});

describe('report charts', () => {
  it('builds accuracy and perplexity charts from the committed H200 results, each naming its source', () => {
    const charts = loadCharts(`${REPO}/bench/results`);
    const pk = charts.find((c) => c.id === 'passkey-vs-length')!;
    expect(pk.sources[0]!.file).toBe('bench/results/passkey-perplexity.json');
    expect((pk.config as { data: { datasets: unknown[] } }).data.datasets.length).toBeGreaterThanOrEqual(2);
    for (const c of charts) expect(c.sources.every((s) => s.file && s.command)).toBe(true);
  });
  it('charts the edge engine against llama.cpp per measurement, leaving out cells a row did not measure', () => {
    const chart = loadCharts(`${REPO}/bench/results`).find((c) => c.id === 'edge-vs-llama-cpp')!;
    const { labels, datasets } = (
      chart.config as { data: { labels: string[]; datasets: { label: string; data: (number | null)[] }[] } }
    ).data;
    expect(labels.at(-1)).toBe('decode');
    expect(datasets.some((d) => /native llama-bench/.test(d.label))).toBe(true);
    const lean = datasets.find((d) => /lean step$/.test(d.label) && /fp32/.test(d.label))!;
    expect(lean.data[0]).toBeNull(); // shares the prefill graph of the row above
    expect(lean.data.at(-1)).toBeGreaterThan(0);
  });
});
