// Latency through the edge API, measured from outside like a client: a short request answered at the edge in
// workerd (`wrangler dev` on the top-level wrangler.toml) and on Node (@hono/node-server), and a 16K-token job on CPU
// (edge → signed intake → runner → S3 → result). Real radosgw, Redis and runner (test/runner/harness.ts starts them).
// Also derives the edge's prefill/decode throughput from Server-Timing: the numbers EDGE_*_TOKENS_PER_S should hold.
//
//   npx tsx bench/edge-bench.ts [--runs 10] [--job-tokens 16384] [--skip-job] [--skip-workerd]
// Writes bench/results/edge-bench.json and bench/results/edge-bench.md. RUNNER_ENGINE picks the runner's engine.
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { scriptArgs } from '../mamba/script-args.ts';
import { loadTokenizer } from '../mamba/tokenizer.ts';
import { SECRET, ensureRadosgw, freePort, runTag, runnerEnv, spawnRunner, startRedis } from '../test/runner/harness.ts';
import { buildEdgeModel, DEFAULT_CHECKPOINT, REPO } from '../worker/model/build.ts';
import { startNodeEdge } from '../worker/node-server.ts';
import { startWrangler, stopGroup } from './edge-wrangler.ts';

const values = scriptArgs(
  'npx tsx bench/edge-bench.ts [options]\nLatency through the edge API from outside: a short request in workerd and on ' +
    'Node, and a 16K-token job on CPU (edge → runner → S3). Writes bench/results/edge-bench.{json,md}, or ' +
    'edge-bench-<engine>.{json,md} for another --engine (wasm-int8, onnx).',
  {
    /** The edge's EDGE_ENGINE; its measured throughput is that engine's routing default (worker/config.ts). */
    engine: { type: 'string', default: 'wasm-fp32' },
    runs: { type: 'string', default: '10' },
    'job-tokens': { type: 'string', default: '16384' },
    'skip-job': { type: 'boolean', default: false },
    'skip-workerd': { type: 'boolean', default: false },
  },
);
const RUNS = Number(values.runs);
const JOB_TOKENS = Number(values['job-tokens']);
const MODEL = 'deciserve-mamba';
const KEY = 'edge-bench-key-0123456789abcdef';
const RESULTS = join(REPO, 'bench/results');
const EDGE_ENGINES = ['wasm-fp32', 'wasm-int8', 'onnx'];
if (!EDGE_ENGINES.includes(values.engine)) throw new Error(`--engine must be one of ${EDGE_ENGINES.join(', ')}`);
const RESULT_NAME = values.engine === 'wasm-fp32' ? 'edge-bench' : `edge-bench-${values.engine}`;
const COMMAND = `npx tsx bench/edge-bench.ts ${process.argv.slice(2).join(' ')}`.trim();

const tokenizer = loadTokenizer(JSON.parse(readFileSync(join(DEFAULT_CHECKPOINT, 'tokenizer.json'), 'utf8')));
const haystack = readFileSync(join(DEFAULT_CHECKPOINT, 'haystack.txt'), 'utf8');
/** The first `n` tokens of the model's held-out text, as text. */
const promptOf = (n: number) => tokenizer.decode(tokenizer.encode(haystack.slice(0, n * 8)).slice(0, n));

interface Sample {
  ms: number;
  status: number;
  ranOn: string | null;
  timing: Record<string, number>;
  firstChunkMs?: number;
}

function parseServerTiming(header: string | null): Record<string, number> {
  const out: Record<string, number> = {};
  for (const metric of (header ?? '').split(',')) {
    const [name, ...params] = metric.split(';').map((s) => s.trim());
    const dur = params.find((p) => p.startsWith('dur='));
    if (name && dur) out[name] = Number(dur.slice(4));
  }
  return out;
}

async function request(
  base: string,
  body: object,
  headers: Record<string, string> = {},
): Promise<Sample & { json: any }> {
  const t0 = performance.now();
  const response = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  const ms = performance.now() - t0;
  if (response.status !== 200) throw new Error(`${base}: HTTP ${response.status} ${text.slice(0, 300)}`);
  return {
    ms,
    status: response.status,
    ranOn: response.headers.get('x-deciserve-ran-on'),
    timing: parseServerTiming(response.headers.get('server-timing')),
    json: JSON.parse(text),
  };
}

/** Time to the first streamed text chunk and to the end of the stream. */
async function streamed(base: string, body: object): Promise<Sample> {
  const t0 = performance.now();
  const response = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  let firstChunkMs: number | undefined;
  const reader = response.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (firstChunkMs === undefined && new TextDecoder().decode(value).includes('"text":"'))
      firstChunkMs = performance.now() - t0;
  }
  return {
    ms: performance.now() - t0,
    status: response.status,
    ranOn: response.headers.get('x-deciserve-ran-on'),
    timing: parseServerTiming(response.headers.get('server-timing')),
    firstChunkMs,
  };
}

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};
const median = (xs: number[]) => percentile(xs, 50);
const round = (x: number) => Math.round(x * 10) / 10;

interface EdgeResult {
  runtime: string;
  shortRequest: { promptTokens: number; maxTokens: number };
  coldMs: number;
  coldTiming: Record<string, number>;
  warm: { p50: number; p90: number; min: number; max: number; runs: number };
  warmStageMedians: Record<string, number>;
  streamFirstChunkMs: number;
  streamTotalMs: number;
  throughput: { prefillTokensPerS: number; decodeTokensPerS: number; from: string };
}

const SHORT = { model: MODEL, prompt: promptOf(128), max_tokens: 32, temperature: 0 };

async function benchEdge(runtime: string, base: string): Promise<EdgeResult> {
  const cold = await request(base, SHORT);
  if (cold.ranOn !== 'edge') throw new Error(`${runtime}: the short request ran on ${cold.ranOn}`);
  const warm: Sample[] = [];
  for (let i = 0; i < RUNS; i++) warm.push(await request(base, SHORT));
  const stream = await streamed(base, SHORT);
  // Throughput: a 512-token prefill and 64 decode steps, from the server's own stage timings (3 runs, medians).
  const calib = [];
  for (let i = 0; i < 3; i++)
    calib.push(await request(base, { model: MODEL, prompt: promptOf(512), max_tokens: 64, temperature: 0 }));
  const promptTokens = calib[0]!.json.usage.prompt_tokens as number;
  const steps = (calib[0]!.json.usage.completion_tokens as number) - 1;
  const stages = ['tokenize', 'load', 'prefill', 'decode', 'total'];
  return {
    runtime,
    shortRequest: { promptTokens: cold.json.usage.prompt_tokens, maxTokens: SHORT.max_tokens },
    coldMs: round(cold.ms),
    coldTiming: cold.timing,
    warm: {
      p50: round(median(warm.map((s) => s.ms))),
      p90: round(
        percentile(
          warm.map((s) => s.ms),
          90,
        ),
      ),
      min: round(Math.min(...warm.map((s) => s.ms))),
      max: round(Math.max(...warm.map((s) => s.ms))),
      runs: RUNS,
    },
    warmStageMedians: Object.fromEntries(stages.map((s) => [s, round(median(warm.map((w) => w.timing[s] ?? 0)))])),
    streamFirstChunkMs: round(stream.firstChunkMs ?? NaN),
    streamTotalMs: round(stream.ms),
    throughput: {
      prefillTokensPerS: Math.round(promptTokens / (median(calib.map((c) => c.timing.prefill!)) / 1000)),
      decodeTokensPerS: Math.round(steps / (median(calib.map((c) => c.timing.decode!)) / 1000)),
      from: `${promptTokens}-token prompt + ${steps + 1} new tokens, Server-Timing prefill/decode medians of 3`,
    },
  };
}

/** Sums of the runner's job_stage_seconds histogram (one job → its stage durations). */
async function runnerStages(runnerUrl: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${runnerUrl}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^deciserve_runner_job_stage_seconds_sum\{([^}]*)\} ([\d.e+-]+)$/gm)) {
    const stage = /stage="([^"]+)"/.exec(m[1]!)?.[1];
    if (stage) out[stage] = round(Number(m[2]) * 1000);
  }
  return out;
}

async function main(): Promise<void> {
  const { dir: modelDir } = await buildEdgeModel();
  const [s3, redis] = await Promise.all([ensureRadosgw(), startRedis('edge-bench')]);
  const tag = runTag('edge-bench');
  const engine = process.env.RUNNER_ENGINE ?? 'reference';
  const runner = await spawnRunner(
    runnerEnv(
      { modelDir: DEFAULT_CHECKPOINT, redisUrl: redis.url, s3, bucket: tag, queue: tag },
      { RUNNER_MODEL_ID: MODEL, RUNNER_ENGINE: engine, RUNNER_LOCK_MS: '60000', RUNNER_STALLED_INTERVAL_MS: '30000' },
    ),
  );
  const vars = {
    API_KEYS: KEY,
    MODEL_ID: MODEL,
    RUNNER_URL: runner.url,
    RUNNER_HMAC_SECRET: SECRET,
    JOB_WAIT_MS: '3600000',
    LOG_REQUESTS: 'false',
    EDGE_ENGINE: values.engine,
  };
  const node = await startNodeEdge({
    env: vars,
    modelDir,
    log: { info: () => {}, error: (m, f) => console.error(m, f) },
  });
  let wrangler: ChildProcess | undefined;
  const results: EdgeResult[] = [];
  let job: Record<string, unknown> | null = null;
  try {
    let workerdBase: string | null = null;
    if (!values['skip-workerd']) {
      const port = await freePort();
      wrangler = await startWrangler(port, vars);
      workerdBase = `http://127.0.0.1:${port}`;
      console.log('workerd: short requests…');
      results.push(await benchEdge('workerd (wrangler dev)', workerdBase));
    }
    console.log('node: short requests…');
    results.push(await benchEdge('Node (@hono/node-server)', node.url));

    if (!values['skip-job']) {
      const prompt = promptOf(JOB_TOKENS);
      const base = workerdBase ?? node.url;
      console.log(`${JOB_TOKENS}-token job through ${workerdBase ? 'workerd' : 'Node'} (runner engine ${engine})…`);
      const sample = await request(base, { model: MODEL, prompt, max_tokens: 16, temperature: 0 });
      job = {
        through: workerdBase ? 'workerd (wrangler dev)' : 'Node (@hono/node-server)',
        runnerEngine: sample.json.deciserve.engine,
        promptTokens: sample.json.usage.prompt_tokens,
        completionTokens: sample.json.usage.completion_tokens,
        ranOn: sample.ranOn,
        totalMs: round(sample.ms),
        edgeStages: sample.timing,
        runnerStagesMs: await runnerStages(runner.url),
        decimation: sample.json.deciserve.decimation,
        text: sample.json.choices[0].text,
      };
    }
  } finally {
    stopGroup(wrangler);
    await node.close();
    runner.kill('SIGTERM');
    await runner.exited;
    await redis.stop();
  }

  // --skip-job keeps the job measured by an earlier run (it takes minutes), with its own date.
  const previousPath = join(RESULTS, `${RESULT_NAME}.json`);
  if (!job && values['skip-job']) {
    const previous = JSON.parse(existsSync(previousPath) ? readFileSync(previousPath, 'utf8') : '{}') as {
      job?: Record<string, unknown>;
      date?: string;
      command?: string;
    };
    if (previous.job)
      job = {
        measuredAt: previous.job.measuredAt ?? previous.date,
        command: previous.job.command ?? previous.command,
        ...previous.job,
      };
  } else if (job) {
    job = { measuredAt: new Date().toISOString(), command: COMMAND, ...job };
  }
  const machine = {
    node: process.version,
    cpu: `${cpus()[0]?.model} × ${cpus().length}`,
    loadAverage1m: round(loadavg()[0]!),
  };
  const out = { command: COMMAND, date: new Date().toISOString(), engine: values.engine, machine, edge: results, job };
  writeFileSync(join(RESULTS, `${RESULT_NAME}.json`), `${JSON.stringify(out, null, 2)}\n`);
  writeFileSync(join(RESULTS, `${RESULT_NAME}.md`), markdown(out));
  console.log(markdown(out));
}

const ENGINE_WORDS: Record<string, string> = {
  'wasm-fp32': 'the mamba/wasm SIMD engine in fp32, the default',
  'wasm-int8': 'the mamba/wasm SIMD engine, int8 weights',
  onnx: 'onnxruntime-web on the ONNX export',
};

function markdown(out: {
  command: string;
  date: string;
  engine: string;
  machine: Record<string, unknown>;
  edge: EdgeResult[];
  job: Record<string, any> | null;
}): string {
  const lines = [
    '# Edge API latency',
    '',
    `Command: \`${out.command}\`  `,
    `Date: ${out.date}; Node ${out.machine.node}; ${out.machine.cpu}; load average at the end ${out.machine.loadAverage1m} (shared machine: other sessions run at the same time).  `,
    `Model: models/deciserve-mamba (6.3M parameters), edge engine: EDGE_ENGINE=${out.engine} (${ENGINE_WORDS[out.engine] ?? out.engine}; one thread). Latency is measured by the client over local HTTP, body included; stage times come from the Server-Timing header.`,
    '',
    `## Short request at the edge (${out.edge[0]?.shortRequest.promptTokens ?? '?'}-token prompt, ${SHORT.max_tokens} new tokens, greedy)`,
    '',
    '| runtime | cold first request (ms) | warm p50 (ms) | warm p90 (ms) | min–max (ms) | stream: first text (ms) | prefill / decode p50 (ms) |',
    '|---|---:|---:|---:|---:|---:|---:|',
    ...out.edge.map(
      (r) =>
        `| ${r.runtime} | ${r.coldMs} (engine load ${round(r.coldTiming.load ?? 0)}) | ${r.warm.p50} | ${r.warm.p90} | ${r.warm.min}–${r.warm.max} | ${r.streamFirstChunkMs} | ${r.warmStageMedians.prefill} / ${r.warmStageMedians.decode} |`,
    ),
    '',
    '## Edge throughput (what EDGE_PREFILL_TOKENS_PER_S / EDGE_DECODE_TOKENS_PER_S should hold)',
    '',
    '| runtime | prefill tokens/s | decode tokens/s | measured on |',
    '|---|---:|---:|---|',
    ...out.edge.map(
      (r) =>
        `| ${r.runtime} | ${r.throughput.prefillTokensPerS} | ${r.throughput.decodeTokensPerS} | ${r.throughput.from} |`,
    ),
    '',
  ];
  if (out.job) {
    const j = out.job;
    const kept =
      (j.decimation?.kept ?? [])
        .map((k: { layer: number; tokens: number }) => `layer ${k.layer}: ${k.tokens}`)
        .join(', ') || 'none';
    lines.push(
      `## ${j.promptTokens}-token job on CPU through the API`,
      '',
      `Measured ${j.measuredAt} by \`${j.command}\`. POST /v1/completions (max_tokens 16, greedy) through ${j.through}; the edge counts tokens, submits a signed job, waits, reads the result from S3. Runner engine: ${j.runnerEngine} (the one the runner wires today), one thread; decimation "auto" turned DeciMamba on (tokens kept: ${kept}).`,
      '',
      '| total (s) | edge: tokenize / submit / wait / result (ms) | runner: queue wait / load input / prefill / decode / write result (ms) |',
      '|---:|---|---|',
      `| ${round(j.totalMs / 1000)} | ${[j.edgeStages.tokenize, j.edgeStages.submit, j.edgeStages.wait, j.edgeStages.result].map((v: number | undefined) => round(v ?? NaN)).join(' / ')} | ${['queue_wait', 'load_input', 'prefill', 'decode', 'write_result'].map((s) => j.runnerStagesMs[s] ?? '–').join(' / ')} |`,
      '',
    );
  }
  return `${lines.join('\n')}\n`;
}

await main();
process.exit(0);
