// Chart specs (Chart.js configs + where their data came from), built from bench/results/*.json and S3 suites.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ChartSpec {
  id: string;
  title: string;
  /** The files the data came from and the commands that produced them. */
  sources: Array<{ file: string; command: string }>;
  /** A Chart.js configuration (type, data, options). */
  config: Record<string, unknown>;
  note?: string;
}

type Json = Record<string, any>;
const PALETTE = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#ff7f0e',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
  '#bcbd22',
];
const color = (i: number) => PALETTE[i % PALETTE.length]!;
/** Distinct colours for charts with more series than the palette (golden-angle hues). */
const manyColor = (i: number) =>
  i < PALETTE.length ? color(i) : `hsl(${Math.round((i * 137.5) % 360)}, 60%, ${i % 2 ? 38 : 58}%)`;

function readJson(path: string): Json | null {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return null;
  }
}

const logAxis = (title: string) => ({ type: 'logarithmic', title: { display: true, text: title } });
const linAxis = (title: string, extra: Json = {}) => ({
  type: 'linear',
  title: { display: true, text: title },
  ...extra,
});
const line = (label: string, points: Array<{ x: number; y: number | null }>, i: number, dashed = false) => ({
  label,
  data: points.filter((p) => p.y !== null && Number.isFinite(p.y)),
  borderColor: color(i),
  backgroundColor: color(i),
  borderDash: dashed ? [6, 4] : [],
  tension: 0,
  showLine: true,
});

export function loadCharts(resultsDir: string, extraSuites: Json[] = []): ChartSpec[] {
  const charts: ChartSpec[] = [];
  const files = existsSync(resultsDir) ? readdirSync(resultsDir).sort() : [];

  // 1 + 2: latency percentiles and throughput against offered load, per load result file and variant.
  const loads = files
    .filter((f) => /^load-.*\.json$/.test(f))
    .map((f) => ({ f, r: readJson(join(resultsDir, f)) }))
    .filter((x) => x.r?.steps);
  if (loads.length > 0) {
    const lat: Json[] = [];
    const thr: Json[] = [];
    let i = 0;
    for (const { r } of loads) {
      const variants = [...new Set(r!.steps.flatMap((s: Json) => s.variants.map((v: Json) => v.variant)))] as string[];
      for (const variant of variants) {
        const rows = r!.steps
          .map((s: Json) => ({ rate: s.rate, v: s.variants.find((x: Json) => x.variant === variant) }))
          .filter((x: Json) => x.v);
        const metric = (v: Json) => v.jobs?.e2eMs ?? v.latencyMs;
        const what = rows[0]?.v.jobs ? 'job e2e' : 'request';
        for (const p of ['p50', 'p95', 'p99'] as const)
          lat.push(
            line(
              `${r!.scenario} ${variant} ${what} ${p}`,
              rows.map((x: Json) => ({ x: x.rate, y: metric(x.v)[p] })),
              i++,
              p !== 'p95',
            ),
          );
        thr.push(
          line(
            `${r!.scenario} ${variant} achieved req/s`,
            rows.map((x: Json) => ({ x: x.rate, y: x.v.throughputRps })),
            i++,
          ),
        );
        if (rows[0]?.v.jobs)
          thr.push(
            line(
              `${r!.scenario} ${variant} jobs done/s`,
              rows.map((x: Json) => ({ x: x.rate, y: x.v.jobs.succeeded / Math.max(1e-9, r!.steps[0].durationS) })),
              i++,
              true,
            ),
          );
      }
    }
    const sources = loads.map(({ f, r }) => ({ file: `bench/results/${f}`, command: r!.command }));
    charts.push({
      id: 'latency-vs-load',
      title: 'Latency percentiles against offered load',
      sources,
      config: {
        type: 'scatter',
        data: { datasets: lat },
        options: { scales: { x: linAxis('offered load (requests/s per variant)'), y: logAxis('latency (ms)') } },
      },
    });
    charts.push({
      id: 'throughput',
      title: 'Throughput against offered load',
      sources,
      config: {
        type: 'scatter',
        data: { datasets: thr },
        options: {
          scales: {
            x: linAxis('offered load (requests/s per variant)'),
            y: linAxis('per second', { beginAtZero: true }),
          },
        },
      },
    });
  }

  // 2b: per-stage time from Server-Timing (edge answers), stacked per scenario, variant and rate.
  const staged = loads.flatMap(({ f, r }) =>
    r!.steps.flatMap((s: Json) =>
      s.variants
        .filter((v: Json) => Object.keys(v.serverTimingMs ?? {}).length > 0)
        .map((v: Json) => ({ f, r, label: `${r!.scenario} ${v.variant} @${s.rate}/s`, st: v.serverTimingMs as Json })),
    ),
  );
  if (staged.length > 0) {
    const stages = [...new Set(staged.flatMap((x) => Object.keys(x.st)))].filter((k) => k !== 'total');
    charts.push({
      id: 'server-timing',
      title: 'Where the time goes: Server-Timing stages (mean ms per request)',
      sources: [...new Map(staged.map((x) => [x.f, { file: `bench/results/${x.f}`, command: x.r!.command }])).values()],
      config: {
        type: 'bar',
        data: {
          labels: staged.map((x) => x.label),
          datasets: stages.map((k, i) => ({
            label: k,
            data: staged.map((x) => x.st[k]?.mean ?? 0),
            backgroundColor: color(i),
          })),
        },
        options: { scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: 'ms' } } } },
      },
    });
  }

  // 3: dollars per edge request and per long job against context length.
  const cost = readJson(join(resultsDir, 'cost.json'));
  if (cost) {
    const ds: Json[] = [
      line(
        'edge request (Workers, measured CPU)',
        cost.edge.byLength.map((e: Json) => ({ x: e.tokens, y: e.dollarsPer1K / 1000 })),
        0,
      ),
    ];
    let i = 1;
    for (const t of cost.throughputs.filter((t: Json) => !t.id.startsWith('edge'))) {
      for (const variant of ['mamba', 'decimamba']) {
        const pts = cost.jobs
          .filter((j: Json) => j.runner === t.id && j.variant === variant)
          .map((j: Json) => ({ x: j.length, y: j.total }));
        ds.push(
          line(
            `job: ${t.label}, ${variant}${t.kind === 'estimate' ? ' (estimate)' : ''}`,
            pts,
            variant === 'mamba' ? i : i,
            variant === 'decimamba',
          ),
        );
      }
      i++;
    }
    charts.push({
      id: 'cost-vs-length',
      title: '$ per request / per job against context length',
      sources: [{ file: 'bench/results/cost.json', command: cost.command }],
      note: `Inputs: ${Object.values(cost.sources).filter(Boolean).join('; ')}. GPU lines are estimates (the H200-measured CUDA runner scaled by memory bandwidth); DeciMamba dashed.`,
      config: {
        type: 'scatter',
        data: { datasets: ds },
        options: { scales: { x: logAxis('context length (tokens)'), y: logAxis('$ per request or job') } },
      },
    });
  }

  // 4: accuracy and perplexity against context length: the H200 eval and suites run through the job API.
  const pp = readJson(join(resultsDir, 'passkey-perplexity.json'));
  const suites = [
    ...files
      .filter((f) => /^quality-.*\.json$/.test(f))
      .map((f) => ({ file: `bench/results/${f}`, r: readJson(join(resultsDir, f)) })),
    ...extraSuites.map((r) => ({ file: `S3 results/${r.id}.json`, r })),
  ].filter((x) => x.r?.summary);
  for (const task of ['passkey', 'perplexity'] as const) {
    const ds: Json[] = [];
    const sources: ChartSpec['sources'] = [];
    let i = 0;
    if (pp?.[task]) {
      for (const [mode, byLen] of Object.entries(pp[task] as Json)) {
        const pts = Object.entries(byLen as Json).map(([L, v]) => ({
          x: Number(L),
          y:
            task === 'passkey'
              ? (100 * Object.values(v as Json).reduce((a: number, b: any) => a + b, 0)) /
                Object.values(v as Json).length
              : (v as number),
        }));
        ds.push(line(`${mode} (H200 eval)`, pts, i++));
      }
      sources.push({ file: 'bench/results/passkey-perplexity.json', command: pp.command });
    }
    for (const { file, r } of suites.filter((s) => s.r!.spec?.task === task)) {
      for (const [variant, byLen] of Object.entries(r!.summary.byLength as Json)) {
        ds.push(
          line(
            `${variant} (through the job API, ${r!.endpoint?.via ?? 'runner'})`,
            Object.entries(byLen as Json).map(([L, c]) => ({
              x: Number(L),
              y: task === 'passkey' ? 100 * (c as Json).value : (c as Json).value,
            })),
            i++,
            true,
          ),
        );
      }
      sources.push({ file, command: r!.command ?? `deciserve bench submit ${task} (suite job ${r!.id})` });
    }
    if (ds.length > 0) {
      charts.push({
        id: `${task}-vs-length`,
        title: task === 'passkey' ? 'Passkey accuracy against context length' : 'Perplexity against context length',
        sources,
        config: {
          type: 'scatter',
          data: { datasets: ds },
          options: {
            scales: {
              x: logAxis('context length (tokens)'),
              y:
                task === 'passkey'
                  ? linAxis('accuracy (%)', { min: 0, max: 100 })
                  : logAxis('perplexity (last 100 tokens)'),
            },
          },
        },
      });
    }
  }

  // 5 + 6: the CUDA engine on the H200 (mamba/cuda/device-check.ts): where prefill time goes, and prefill speed.
  const cuda = readJson(join(resultsDir, 'cuda-bench.json'));
  const cudaSource = {
    file: 'bench/results/cuda-bench.json',
    command:
      'node .device/app/device-check.mjs --phases env,bench --shapes 130m,1.4b (mamba/cuda/device-check.ts; parts and merge in bench/results/cuda-device-check.md)',
  };
  if (cuda?.tables?.breakdown?.length) {
    const rows = (cuda.tables.breakdown as Json[]).filter((r) => !String(r.kernel).startsWith('TOTAL'));
    const groups = [...new Set(rows.map((r) => `${r.shape} ${r.engine} L=${r.L} ${r.mode}`))];
    const kernels = [...new Set(rows.map((r) => String(r.kernel)))];
    charts.push({
      id: 'gpu-kernels',
      title: 'GPU kernel time breakdown of one prefill (H200, ms)',
      sources: [cudaSource],
      config: {
        type: 'bar',
        data: {
          labels: groups,
          datasets: kernels.map((k, i) => ({
            label: k,
            backgroundColor: manyColor(i),
            data: groups.map(
              (g) => rows.find((r) => `${r.shape} ${r.engine} L=${r.L} ${r.mode}` === g && r.kernel === k)?.ms ?? 0,
            ),
          })),
        },
        options: {
          indexAxis: 'y',
          scales: { x: { stacked: true, title: { display: true, text: 'ms' } }, y: { stacked: true } },
        },
      },
    });
  }
  if (cuda?.tables?.prefill?.length) {
    const ds: Json[] = [];
    let i = 0;
    const series = [...new Set((cuda.tables.prefill as Json[]).map((r) => `${r.shape} ${r.engine} ${r.mode}`))];
    for (const key of series) {
      const pts = (cuda.tables.prefill as Json[])
        .filter((r) => `${r.shape} ${r.engine} ${r.mode}` === key)
        .map((r) => ({ x: r.L, y: r.tokensPerS }));
      ds.push(line(`CUDA engine ${key}`, pts, i++, key.endsWith('decimamba')));
    }
    const cmp = readJson(join(resultsDir, 'cuda-compare.json'));
    const sources = [cudaSource];
    if (cmp?.rows?.length) {
      for (const key of [...new Set((cmp.rows as Json[]).map((r) => `${r.impl} ${r.shape} ${r.dtype} ${r.mode}`))]) {
        const pts = (cmp.rows as Json[])
          .filter((r) => `${r.impl} ${r.shape} ${r.dtype} ${r.mode}` === key)
          .map((r) => ({ x: r.L, y: r.tokensPerS }));
        ds.push(
          line(
            `PyTorch ${key.replace(/^hf /, 'HF transformers ').replace(/^train /, 'train/mamba.py ')}`,
            pts,
            i++,
            true,
          ),
        );
      }
      sources.push({
        file: 'bench/results/cuda-compare.json',
        command: 'python3 bench/cuda-compare.py --bench-dir /tmp/deciserve-bench --out $OUT --budget-s 185',
      });
    }
    charts.push({
      id: 'gpu-prefill',
      title: 'Prefill throughput on one H200: the CUDA engine against PyTorch (same weights)',
      sources,
      config: {
        type: 'scatter',
        data: { datasets: ds },
        options: { scales: { x: logAxis('prompt length (tokens)'), y: logAxis('prompt tokens/s') } },
      },
    });
  }
  // The edge engine against llama.cpp on the same weights (bench/peers/run.ts): median tok/s per measurement.
  const peers = readJson(join(resultsDir, 'peers-llama-cpp.json'));
  if (peers?.rows?.length) {
    const keys = [...(peers.lengths as number[]).map((l) => `prefill${l}`), 'decode'];
    charts.push({
      id: 'edge-vs-llama-cpp',
      title: 'Edge engine (WASM) against llama.cpp on the same weights, one CPU thread (median tok/s)',
      sources: [{ file: 'bench/results/peers-llama-cpp.json', command: peers.command }],
      note: peers.note,
      config: {
        type: 'bar',
        data: {
          labels: keys.map((k) => k.replace('prefill', 'prefill ')),
          datasets: (peers.rows as Json[]).map((r, i) => ({
            label: r.engine,
            backgroundColor: manyColor(i),
            data: keys.map((k) => r[k]?.medianTps ?? null),
          })),
        },
        options: { scales: { y: linAxis('tokens/s', { beginAtZero: true }) } },
      },
    });
  }
  return charts;
}
