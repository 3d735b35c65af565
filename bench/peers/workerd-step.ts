// The edge's decode paths in workerd, one `wrangler dev` each on the test/workerd harness (bench/onnx-workerd.ts):
// ORT's If-graph step (EDGE_ENGINE=onnx) against mamba/wasm's SIMD engine in fp32 and int8 (its own prefill too).
// Shorter than `bench/peers/run.ts --workerd` (which also runs the lean-graph export and every Node round).
//   npx tsx bench/peers/workerd-step.ts     writes bench/results/peers-workerd-step.{json,md}
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { loadCheckpoint } from '../../mamba/checkpoint.ts';
import { haystackText } from '../../mamba/passkey.ts';
import { exportMambaOnnx } from '../../mamba/onnx/export/export-model.ts';
import { writeOnnxExport } from '../../mamba/onnx/node.ts';
import { buildStepWasm } from '../../mamba/wasm/build.ts';
import { benchWorkerd, workerBundleSize } from '../onnx-workerd.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const RESULTS = join(ROOT, 'bench', 'results');
const TMP = join(RESULTS, 'tmp', 'workerd-step');
const command = 'npx tsx bench/peers/workerd-step.ts';
const DECODES = [
  { label: 'ORT If-graph step (EDGE_ENGINE=onnx)', decode: undefined },
  { label: 'SIMD step fp32 (EDGE_ENGINE=wasm-fp32)', decode: 'wasm-fp32' },
  { label: 'SIMD step int8 (EDGE_ENGINE=wasm-int8)', decode: 'wasm-int8' },
];

await buildStepWasm();
const model = join(ROOT, 'models', 'deciserve-mamba');
const ckpt = await loadCheckpoint(model);
const corpus = ckpt.tokenizer.encode(haystackText(readFileSync(join(model, 'haystack.txt'), 'utf8')).slice(0, 200_000));
const ids = (n: number) => Array.from({ length: n }, (_, i) => corpus[i % corpus.length]!);
mkdirSync(join(ROOT, 'test', '.tmp', 'workerd-model'), { recursive: true }); // named by the harness's wrangler.toml
const bundle = join(TMP, 'bundle');
workerBundleSize(bundle);
const dir = join(TMP, 'model');
await writeOnnxExport(dir, exportMambaOnnx(ckpt.config, ckpt.weights, { decimationLayers: [], leanStep: false }));
copyFileSync(join(model, 'model.safetensors'), join(dir, 'model.safetensors'));

const loadStart = loadavg();
const rows = [];
for (const d of DECODES) {
  process.stderr.write(`[workerd-step] ${d.label}\n`);
  rows.push({ ...d, ...(await benchWorkerd(bundle, dir, TMP, ids, d.decode)) });
}
const loadEnd = loadavg();
const f = (v: number) => Math.round(v).toLocaleString('en-US');
const table = [
  '| decode path (prefill: ORT) | prefill 512 | decode, wall | decode, per CPU second | wasm memory MiB | workerd peak RSS MiB |',
  '|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.label} | ${f(r.prefill.find((p) => p.length === 512)!.tokensPerSecond)} | ${f(r.decodeTokensPerSecond)} | ` +
      `${f(r.cpuDecodeTokensPerSecond)} | ${r.wasmMemoryMiB.toFixed(1)} | ${r.workerdPeakRssMiB.toFixed(0)} |`,
  ),
].join('\n');
const note =
  'tok/s in workerd (wrangler dev, test/workerd harness, one isolate): decode = 64 greedy steps after a 512-token ' +
  'prompt, (generate 65 − generate 1) / 64, medians of 5 (wall) and minimum CPU time of the workerd process ' +
  `(per CPU second); wasm memory after the runs (ORT's heap + the step module's); load average ` +
  `${loadStart.map((v) => v.toFixed(2)).join('/')} at start, ${loadEnd.map((v) => v.toFixed(2)).join('/')} at end ` +
  '(2 cores, shared with other work).';
process.stdout.write(`${table}\n\n${note}\n`);
writeFileSync(
  join(RESULTS, 'peers-workerd-step.json'),
  `${JSON.stringify({ command, date: new Date().toISOString(), loadStart, loadEnd, note, rows }, null, 2)}\n`,
);
writeFileSync(
  join(RESULTS, 'peers-workerd-step.md'),
  `# Edge decode paths in workerd\n\n\`${command}\`\n\n${table}\n\n${note}\n`,
);
