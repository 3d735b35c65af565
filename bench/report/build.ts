// `deciserve report`: bench/results/*.json (+ quality suites stored in S3) → one static HTML page.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { bucketFromEnv, getText, listSuiteSummaries } from '../quality/s3.ts';
import { loadCharts } from './charts.ts';
import { renderReport } from './html.ts';

const EXPECTED = [
  'latency-vs-load',
  'throughput',
  'cost-vs-length',
  'passkey-vs-length',
  'perplexity-vs-length',
  'gpu-kernels',
  'gpu-prefill',
];

export async function buildReport(opts: {
  resultsDir: string;
  out: string;
  command: string;
  fromS3: boolean;
}): Promise<{ charts: string[]; out: string }> {
  const suites: Record<string, unknown>[] = [];
  if (opts.fromS3) {
    const bucket = bucketFromEnv();
    if (!bucket) throw new Error('--s3 needs the S3_* environment of the runner (S3_ENDPOINT, S3_BUCKET, keys)');
    for (const key of await listSuiteSummaries(bucket)) suites.push(JSON.parse(await getText(bucket, key)));
  }
  const charts = loadCharts(opts.resultsDir, suites);
  const have = new Set(charts.map((c) => c.id));
  const missing = EXPECTED.filter((id) => !have.has(id)).map((id) =>
    id.startsWith('gpu-') ? `${id} (bench/results/cuda-bench.json from mamba/cuda/device-check.ts on a GPU)` : id,
  );
  const html = renderReport(charts, {
    title: 'deciserve benchmarks: DeciMamba vs Mamba',
    generated: new Date().toISOString(),
    command: opts.command,
    missing,
  });
  await mkdir(dirname(opts.out), { recursive: true });
  await writeFile(opts.out, html);
  return { charts: charts.map((c) => c.id), out: opts.out };
}
