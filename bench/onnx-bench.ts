// Speed, memory, size and quality of the ONNX engine (fp32 / int8 / int4) in Node (onnxruntime-web WASM, one thread)
// and in workerd (wrangler dev), against the TS reference and onnxruntime-node (native, one thread) on the same graph.
// Run: npx tsx bench/onnx-bench.ts [--model <checkpoint>] [--skip-workerd] [--skip-reference] (needs onnxruntime-node, see below)
// Writes bench/results/onnx-bench.json and bench/results/onnx-bench.md. Uses models/deciserve-mamba when present,
// else a random checkpoint of the shipped shape (d_model 256, 10 layers, vocab 4096).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { loadCheckpoint } from '../mamba/checkpoint.ts';
import { defaultDecimation } from '../mamba/decimation.ts';
import type { MambaConfig, MambaEngine, MambaWeights } from '../mamba/engine.ts';
import { generate } from '../mamba/generate.ts';
import { OnnxEngine, type OrtApi } from '../mamba/onnx/engine.ts';
import { exportMambaOnnx, modelBytes, type ExportedModel } from '../mamba/onnx/export/export-model.ts';
import type { Quantization } from '../mamba/onnx/export/layers.ts';
import { createOnnxEngineNode, initOrtNode, writeOnnxExport } from '../mamba/onnx/node.ts';
import { ortWasmMemoryBytes } from '../mamba/onnx/ort-wasm.ts';
import { encodeCorpus, haystackText, runPasskey, type PasskeyTokenizer } from '../mamba/passkey.ts';
import { randomConfig, randomWeights } from '../mamba/random-checkpoint.ts';
import { ReferenceEngine } from '../mamba/reference/index.ts';
import { createRng } from '../mamba/rng.ts';
import { argmax, logSoftmax } from '../mamba/sampling.ts';
import { scriptArgs } from '../mamba/script-args.ts';
import { scoreSpan } from '../mamba/score.ts';
import { type EngineTimings, onnxBenchMarkdown, type QuantResult, type Quality } from './onnx-bench-report.ts';
import { benchWorkerd, workerBundleSize, type BundleSize, type WorkerdTimings } from './onnx-workerd.ts';

const ROOT = resolve(import.meta.dirname, '..');
const RESULTS = join(ROOT, 'bench', 'results');
const TMP = join(RESULTS, 'tmp');
const LENGTHS = [128, 512, 2048];
const QUANTS: Quantization[] = ['none', 'int8', 'int8-dynamic', 'int4'];

const flags = scriptArgs(
  'npx tsx bench/onnx-bench.ts [options]\nSpeed, memory, size and quality of the ONNX engine (fp32/int8/int4) in Node ' +
    'and workerd against the TS reference and onnxruntime-node; writes bench/results/onnx-bench.{json,md} (~15 min).',
  {
    model: { type: 'string' },
    'skip-workerd': { type: 'boolean' },
    'skip-reference': { type: 'boolean' },
    'passkey-samples': { type: 'string', default: '2' },
  },
);
const command = `npx tsx bench/onnx-bench.ts ${process.argv.slice(2).join(' ')}`.trim();

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}
const log = (msg: string) => process.stderr.write(`[onnx-bench] ${msg}\n`);

// onnxruntime-node (288 MB, and a postinstall that downloads CUDA libraries) is only this benchmark's native baseline,
// so it is not in package.json: install it next to the project when running the benchmark.
const ORT_NODE = 'onnxruntime-node';
const ortNode = (await import(ORT_NODE).catch(() => {
  log(
    `needs ${ORT_NODE}: ONNXRUNTIME_NODE_INSTALL=skip npm install --no-save ${ORT_NODE}@1.30.0 (the CPU build is bundled; skip avoids its CUDA download)`,
  );
  process.exit(2);
})) as OrtApi;

// ---- the model -------------------------------------------------------------------------------------------------
interface BenchModel {
  source: string;
  config: MambaConfig;
  weights: MambaWeights;
  tokenizer: PasskeyTokenizer | null;
  heldOut: number[] | null;
}

async function openBenchModel(): Promise<BenchModel> {
  const dir =
    flags.model ??
    (existsSync(join(ROOT, 'models/deciserve-mamba/config.json')) ? join(ROOT, 'models/deciserve-mamba') : null);
  if (dir) {
    const ckpt = await loadCheckpoint(dir);
    const hayPath = join(dir, 'haystack.txt');
    const heldOut = existsSync(hayPath)
      ? encodeCorpus(ckpt.tokenizer, haystackText(readFileSync(hayPath, 'utf8')))
      : null;
    return {
      source: dir.replace(ROOT + '/', ''),
      config: ckpt.config,
      weights: ckpt.weights,
      tokenizer: ckpt.tokenizer,
      heldOut,
    };
  }
  const config = randomConfig({ dModel: 256, nLayer: 10, vocabSize: 4096 });
  return {
    source: 'random checkpoint (seed 0) of the shipped shape: d_model 256, 10 layers, vocab 4096',
    config,
    weights: randomWeights(config, 0),
    tokenizer: null,
    heldOut: null,
  };
}

const model = await openBenchModel();
const { config } = model;
const params = (() => {
  const w = model.weights;
  const count = (t: { data: Float32Array } | null) => t?.data.length ?? 0;
  let n = count(w.embedding) + count(w.normF) + (config.tieEmbeddings ? 0 : count(w.lmHead));
  for (const l of w.layers) for (const t of Object.values(l)) n += count(t as { data: Float32Array } | null);
  return n;
})();
const rng = createRng(7);
const randomIds = (n: number) => Array.from({ length: n }, () => rng.int(config.vocabSize));
const promptIds = (n: number) =>
  model.heldOut && model.heldOut.length >= n ? model.heldOut.slice(0, n) : randomIds(n);
log(`model: ${model.source}; ${(params / 1e6).toFixed(2)}M params`);

// ---- engine measurements ---------------------------------------------------------------------------------------
const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
async function timedBoth(fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const [w, c] = [performance.now(), cpuNow()];
  await fn();
  return { wall: performance.now() - w, cpu: cpuNow() - c };
}

async function measure(
  engine: MambaEngine,
  lengths: number[],
  decodeSteps = 64,
  latencyReps = 3,
  slow = false,
): Promise<EngineTimings> {
  const prefill: EngineTimings['prefill'] = [];
  // Warm-up: V8 tiers hot wasm functions up from its baseline compiler in the background.
  for (let i = 0; i < (slow ? 1 : 3); i++) await engine.prefill(promptIds(512));
  for (const length of lengths) {
    const ids = promptIds(length);
    const reps = slow ? (length > 1000 ? 1 : 2) : length > 1000 ? 3 : 5;
    const runs: { wall: number; cpu: number }[] = [];
    for (let i = 0; i < reps; i++) runs.push(await timedBoth(() => engine.prefill(ids)));
    const ms = median(runs.map((r) => r.wall));
    const cpuMs = Math.min(...runs.map((r) => r.cpu));
    prefill.push({
      length,
      ms,
      tokensPerSecond: (length / ms) * 1000,
      cpuMs,
      cpuTokensPerSecond: (length / cpuMs) * 1000,
    });
  }
  const start = await engine.prefill(promptIds(512));
  const decodeRuns: { wall: number; cpu: number }[] = [];
  for (let r = 0; r < (slow ? 1 : 3); r++) {
    let state = start.state;
    let token = argmax(start.logits[0]!);
    decodeRuns.push(
      await timedBoth(async () => {
        for (let i = 0; i < decodeSteps; i++) {
          const out = await engine.step(token, state);
          state = out.state;
          token = argmax(out.logits);
        }
      }),
    );
  }
  const latencies: number[] = [];
  for (let i = 0; i < latencyReps; i++)
    latencies.push(
      (await timedBoth(() => generate(engine, null, promptIds(512), { maxTokens: 32, stopTokenIds: [] }))).wall,
    );
  return {
    prefill,
    decodeTokensPerSecond: (decodeSteps / median(decodeRuns.map((r) => r.wall))) * 1000,
    cpuDecodeTokensPerSecond: (decodeSteps / Math.min(...decodeRuns.map((r) => r.cpu))) * 1000,
    latency512plus32Ms: median(latencies),
  };
}

// ---- quality against fp32 --------------------------------------------------------------------------------------
async function quality(engine: MambaEngine, fp32: MambaEngine): Promise<Quality> {
  const ids = promptIds(512);
  const [a, b] = [
    await fp32.prefill(ids, { logitPositions: 'all' }),
    await engine.prefill(ids, { logitPositions: 'all' }),
  ];
  let maxAbsLogitDiff = 0;
  let sumAbs = 0;
  let kl = 0;
  let top1 = 0;
  a.logits.forEach((row, r) => {
    const other = b.logits[r]!;
    row.forEach((v, i) => {
      const d = Math.abs(v - other[i]!);
      maxAbsLogitDiff = Math.max(maxAbsLogitDiff, d);
      sumAbs += d;
    });
    if (argmax(row) === argmax(other)) top1++;
    const [pa, pb] = [logSoftmax(row), logSoftmax(other)];
    for (let i = 0; i < pa.length; i++) kl += Math.exp(pa[i]!) * (pa[i]! - pb[i]!);
  });
  const [ga, gb] = [
    await generate(fp32, null, ids, { maxTokens: 32, stopTokenIds: [] }),
    await generate(engine, null, ids, { maxTokens: 32, stopTokenIds: [] }),
  ];
  let agree = 0;
  while (agree < 32 && ga.tokens[agree] === gb.tokens[agree]) agree++;
  const scored = await scoreSpan(engine, promptIds(2048), { start: 1 });
  let passkey2k: Quality['passkey2k'] = null;
  if (model.tokenizer && model.heldOut) {
    const samples = Number(flags['passkey-samples']);
    const { cells } = await runPasskey(engine, model.tokenizer, model.heldOut, {
      lengths: [2048],
      depths: [0, 0.25, 0.5, 0.75, 1],
      samples,
      seed: 1,
      modes: ['mamba'],
      decimation: defaultDecimation(config.nLayer),
    });
    const correct = cells.reduce((n, c) => n + c.correct, 0);
    const total = cells.reduce((n, c) => n + c.total, 0);
    passkey2k = { correct, total, accuracy: correct / total };
  }
  return {
    maxAbsLogitDiff,
    meanAbsLogitDiff: sumAbs / (a.logits.length * config.vocabSize),
    meanKl: kl / a.logits.length,
    top1Agreement: top1 / a.logits.length,
    greedyAgreement: agree,
    perplexity: scored.perplexity,
    perplexityText: model.heldOut
      ? "first 2048 tokens of the model's held-out haystack.txt"
      : 'random token ids (random model: only the fp32 delta means anything)',
    passkey2k,
  };
}

// ---- run -------------------------------------------------------------------------------------------------------
mkdirSync(TMP, { recursive: true });
// The Worker bundle is built once: its size is reported, and wrangler dev serves it as is.
const bundle: BundleSize | null = flags['skip-workerd'] ? null : workerBundleSize(join(TMP, 'bundle'));
const t0 = performance.now();
await initOrtNode();
const ortInitMs = performance.now() - t0;
log(`onnxruntime-web initialised in ${ortInitMs.toFixed(0)} ms`);

const results: QuantResult[] = [];
let fp32Engine: OnnxEngine | null = null;
for (const quantization of QUANTS) {
  const e0 = performance.now();
  const exported: ExportedModel = exportMambaOnnx(config, model.weights, { quantization });
  const exportMs = performance.now() - e0;
  const dir = join(TMP, `onnx-${quantization}`);
  await writeOnnxExport(dir, exported);

  const c0 = performance.now();
  const engine = await createOnnxEngineNode(modelBytes(exported));
  const sessionCreateMs = performance.now() - c0;
  log(
    `${quantization}: ${(exported.manifest.bytes / 2 ** 20).toFixed(1)} MiB, session ${sessionCreateMs.toFixed(0)} ms`,
  );
  const nodeWasm = { sessionCreateMs, ...(await measure(engine, LENGTHS)) };
  log(
    `${quantization}: wasm prefill ${nodeWasm.prefill.map((p) => p.tokensPerSecond.toFixed(0)).join('/')} tok/s, decode ${nodeWasm.decodeTokensPerSecond.toFixed(0)} tok/s`,
  );

  // DeciMamba over a 2K prompt: the whole prompt in one run (decimation ranks every context token).
  const dec = { ...defaultDecimation(config.nLayer), lBase: 512 };
  const decIds = promptIds(2048);
  await engine.prefill(decIds, { decimation: dec, protect: 16 });
  const decMs = (await timedBoth(() => engine.prefill(decIds, { decimation: dec, protect: 16 }))).cpu;
  const decOut = await engine.prefill(decIds, { decimation: dec, protect: 16 });
  nodeWasm.wasmMemoryMiB = ortWasmMemoryBytes() / 2 ** 20;

  if (quantization === 'none') fp32Engine = engine;
  const q = await quality(engine, fp32Engine!);
  log(`${quantization}: quality ${JSON.stringify(q)}`);

  let nodeNative: EngineTimings | null = null;
  try {
    const native = await OnnxEngine.create(ortNode, modelBytes(exported), {
      executionProvider: 'cpu',
      sessionOptions: { intraOpNumThreads: 1, interOpNumThreads: 1 },
    });
    nodeNative = await measure(native, LENGTHS);
    log(
      `${quantization}: native prefill ${nodeNative.prefill.map((p) => p.tokensPerSecond.toFixed(0)).join('/')} tok/s, decode ${nodeNative.decodeTokensPerSecond.toFixed(0)} tok/s`,
    );
    await native.dispose();
  } catch (err) {
    log(`${quantization}: onnxruntime-node failed: ${(err as Error).message}`);
  }

  let workerd: WorkerdTimings | null = null;
  if (!flags['skip-workerd']) {
    workerd = await benchWorkerd(join(TMP, 'bundle'), dir, TMP, promptIds);
    log(
      `${quantization}: workerd prefill ${workerd.prefill.map((p) => p.tokensPerSecond.toFixed(0)).join('/')} tok/s, decode ${workerd.decodeTokensPerSecond.toFixed(0)} tok/s, cold ${workerd.coldStartMs.toFixed(0)} ms`,
    );
  }
  results.push({
    quantization,
    fileMiB: exported.manifest.bytes / 2 ** 20,
    exportMs,
    nodeWasm,
    nodeNative,
    workerd,
    quality: q,
    decimated2048: {
      ms: decMs,
      tokensPerSecond: (2048 / decMs) * 1000,
      wasmMemoryMiB: ortWasmMemoryBytes() / 2 ** 20,
      kept: decOut.kept.at(-1)?.indices.length ?? 2048,
    },
  });
}

let reference: EngineTimings | null = null;
if (!flags['skip-reference']) {
  log('reference engine…');
  reference = await measure(new ReferenceEngine(config, model.weights), LENGTHS, 8, 1, true);
}

// ---- report ----------------------------------------------------------------------------------------------------
const markdown = onnxBenchMarkdown({
  command,
  modelSource: model.source,
  params,
  results,
  reference,
  ortInitMs,
  bundle,
  passkeySamples: flags['passkey-samples'],
});
process.stdout.write(markdown);
writeFileSync(join(RESULTS, 'onnx-bench.md'), markdown);
writeFileSync(
  join(RESULTS, 'onnx-bench.json'),
  JSON.stringify(
    {
      command,
      date: new Date().toISOString(),
      node: process.version,
      cpu: cpus()[0]?.model,
      cores: cpus().length,
      loadAverage1m: loadavg()[0],
      model: { source: model.source, params, config },
      ortInitMs,
      results,
      reference,
      bundle,
    },
    null,
    2,
  ) + '\n',
);
log(`wrote bench/results/onnx-bench.{json,md}`);
