// The edge engine's memory in workerd at a DeciMamba prefill (#16: ≤100 MB at 2,048 tokens lets the edge raise
// EDGE_MAX_DECIMATION_TOKENS to the training length). One fresh `wrangler dev` per row (the test/workerd harness on the
// edge model folder), one DeciMamba prefill of L tokens, then: the engine's wasm memory (a wasm heap never shrinks, so
// its size after the prefill is its peak) and the workerd process's peak RSS (VmHWM) above its RSS before the first
// request, an upper bound on what the isolate took (JS heap, wasm memory, the fetched weights) while loading the model
// and running the prefill.
// Run: npx tsx bench/edge-memory-workerd.ts [--lengths 1024,2048] [--engines wasm-fp32,wasm-int8,onnx]
// Writes bench/results/edge-memory-workerd.{json,md}.
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { loadCheckpoint, readModelDefaults } from '../mamba/checkpoint.ts';
import { scriptArgs } from '../mamba/script-args.ts';
import { buildEdgeModel } from '../worker/model/build.ts';
import { withWorkerd, workerBundleSize } from './onnx-workerd.ts';

const ROOT = resolve(import.meta.dirname, '..');
const TMP = join(ROOT, 'bench', 'results', 'tmp');
const flags = scriptArgs(
  "npx tsx bench/edge-memory-workerd.ts [options]\nThe edge engines' memory in workerd at a DeciMamba prefill of each length.",
  {
    lengths: { type: 'string', default: '1024,2048' },
    engines: { type: 'string', default: 'wasm-fp32,wasm-int8,onnx' },
    model: { type: 'string', default: 'models/deciserve-mamba' },
  },
);
const command = `npx tsx bench/edge-memory-workerd.ts ${process.argv.slice(2).join(' ')}`.trim();
const TARGET_MB = 100;
const log = (m: string) => process.stderr.write(`[edge-memory-workerd] ${m}\n`);

const checkpoint = resolve(ROOT, flags.model);
const ckpt = await loadCheckpoint(checkpoint);
const defaults = await readModelDefaults(checkpoint, ckpt.config.nLayer);
const { dir: modelDir } = await buildEdgeModel({ checkpoint, out: join(TMP, 'edge-memory-model') });
const bundle = join(TMP, 'edge-memory-bundle');
workerBundleSize(bundle);
const text = 'The quick brown fox jumps over the lazy dog, said the 3 men at 10 past 4. ';
const layers = defaults.decimation?.layers ?? [ckpt.config.nLayer - 1];

interface Row {
  engine: string;
  length: number;
  wasmMiB: number;
  rssBeforeMiB: number;
  peakRssMiB: number;
  isolatePeakMiB: number;
  kept: number | null;
}
const rows: Row[] = [];
const loadStart = loadavg();
for (const engine of flags.engines.split(',')) {
  for (const length of flags.lengths.split(',').map(Number)) {
    const ids = ckpt.tokenizer.encode(text.repeat(Math.ceil(length / 10))).slice(0, length);
    // L_base = L/2: the layer keeps half the prompt, so every length decimates (the whole prompt runs at once).
    const options = { decimation: { layers, beta: 0.5, lBase: Math.floor(length / 2), minSeqLen: 20 } };
    const row = await withWorkerd(bundle, modelDir, TMP, engine === 'onnx' ? undefined : engine, async (h) => {
      const before = h.memory().rss;
      const r = await h.post('/prefill', { ids, options });
      const kept = (r.kept as { indices: number[] }[])[0]?.indices.length ?? null;
      const { peak } = h.memory();
      const wasmMiB = (r.wasmMemoryBytes as number) / 2 ** 20;
      return { engine, length, wasmMiB, rssBeforeMiB: before, peakRssMiB: peak, isolatePeakMiB: peak - before, kept };
    });
    rows.push(row);
    log(
      `${engine} L=${length}: wasm ${row.wasmMiB.toFixed(1)} MiB, isolate peak ≤ ${row.isolatePeakMiB.toFixed(1)} MiB`,
    );
  }
}
const loadEnd = loadavg();
const lines = [
  '| engine | L | wasm memory after the prefill (MiB) | workerd peak RSS − RSS before (MiB) | ≤100 MB | kept |',
  '|---|---|---|---|---|---|',
  ...rows.map(
    (r) =>
      `| ${r.engine} | ${r.length} | ${r.wasmMiB.toFixed(1)} | ${r.isolatePeakMiB.toFixed(1)} | ` +
      `${r.isolatePeakMiB * 2 ** 20 <= TARGET_MB * 1e6 ? 'yes' : 'no'} | ${r.kept} |`,
  ),
];
const table = lines.join('\n');
process.stdout.write(`${table}\n`);
const load = `load average ${loadStart.map((v) => v.toFixed(2)).join('/')} at start, ${loadEnd.map((v) => v.toFixed(2)).join('/')} at end (2 cores, shared)`;
writeFileSync(
  join(ROOT, 'bench/results/edge-memory-workerd.json'),
  `${JSON.stringify({ command, date: new Date().toISOString(), model: flags.model, layers, targetMB: TARGET_MB, loadStart, loadEnd, rows }, null, 2)}\n`,
);
writeFileSync(
  join(ROOT, 'bench/results/edge-memory-workerd.md'),
  `# Edge engine memory in workerd at a DeciMamba prefill\n\n\`${command}\`\n\n` +
    `One fresh \`wrangler dev\` (test/workerd harness, the edge model folder) per row; one DeciMamba prefill at layers ` +
    `${layers.join(', ')} with L_base = L/2. The RSS column is the workerd process's peak above its RSS before the ` +
    `first request: everything the isolate allocated to load the model and run the prefill (an upper bound on the ` +
    `isolate's peak). ${load}.\n\n${table}\n`,
);
process.exit(0);
