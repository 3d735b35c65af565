// Peak wasm heap of the edge engine (onnxruntime-web, as in a Worker isolate) at a DeciMamba prefill, per length and
// precision. Each measurement runs in a fresh process: a wasm heap never shrinks, so its size after the prefill is
// the peak. Run: npx tsx bench/edge-memory.ts [--lengths 512,1024,2048] [--quant none,int8]
// Writes bench/results/edge-memory.{json,md}. DeciMamba at the model's decimating layers with L_base = L/2, so
// every length decimates (a decimating prompt runs whole, not in chunks: the worst case for memory).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { scriptArgs } from '../mamba/script-args.ts';

const ROOT = resolve(import.meta.dirname, '..');
const flags = scriptArgs(
  'npx tsx bench/edge-memory.ts [options]\nPeak wasm heap of the ONNX edge engine at a DeciMamba prefill, per length ' +
    'and precision, each in a fresh process (--child: one measurement, used internally). The WASM engine in workerd: ' +
    'bench/edge-memory-workerd.ts.',
  {
    lengths: { type: 'string', default: '512,1024,2048' },
    quant: { type: 'string', default: 'none,int8' },
    model: { type: 'string', default: 'models/deciserve-mamba' },
    child: { type: 'string' },
  },
);
const WORKER_LIMIT_MIB = 128;
const TARGET_MIB = 100;

if (flags.child) {
  const [quant, length, pattern, prepack] = flags.child.split(':');
  const { loadCheckpoint, readModelDefaults } = await import('../mamba/checkpoint.ts');
  const { exportMambaOnnx, modelBytes } = await import('../mamba/onnx/export/export-model.ts');
  const { createOnnxEngineNode } = await import('../mamba/onnx/node.ts');
  const { ortWasmMemoryBytes } = await import('../mamba/onnx/ort-wasm.ts');
  const dir = resolve(ROOT, flags.model);
  const ckpt = await loadCheckpoint(dir);
  const defaults = await readModelDefaults(dir, ckpt.config.nLayer);
  // The edge build's export: no lean step graph (worker/model/build.ts).
  const ex = exportMambaOnnx(ckpt.config, ckpt.weights, { quantization: quant as 'none', leanStep: false });
  const engine = await createOnnxEngineNode(modelBytes(ex), {
    sessionOptions: {
      enableMemPattern: pattern === 'on',
      extra: { session: { disable_prepacking: prepack === 'on' ? '0' : '1' } },
    },
  });
  const loaded = ortWasmMemoryBytes();
  const text = 'The quick brown fox jumps over the lazy dog, said the 3 men at 10 past 4. ';
  const ids = ckpt.tokenizer.encode(text.repeat(Math.ceil(Number(length) / 10))).slice(0, Number(length));
  const layers = defaults.decimation?.layers ?? [ckpt.config.nLayer - 1];
  const r = await engine.prefill(ids, {
    decimation: { layers, beta: 0.5, lBase: Math.floor(ids.length / 2), minSeqLen: 20 },
  });
  process.stdout.write(
    JSON.stringify({
      loadedMiB: loaded / 2 ** 20,
      peakMiB: ortWasmMemoryBytes() / 2 ** 20,
      kept: r.kept[0]?.indices.length ?? null,
    }),
  );
  process.exit(0);
}

const command = `npx tsx bench/edge-memory.ts ${process.argv.slice(2).join(' ')}`.trim();
const lengths = flags.lengths.split(',').map(Number);
const quants = flags.quant.split(',');
type Row = {
  quantization: string;
  length: number;
  memPattern: boolean;
  prepack: boolean;
  loadedMiB: number;
  peakMiB: number;
  kept: number;
};
const rows: Row[] = [];
// memPattern: ORT's memory pattern on (the engine's setting before #16) or off (its setting now); prepack: ORT's
// weight pre-packing (off in the engine; on makes decode through the main graph ~1.5x faster).
const settings = [
  { memPattern: false, prepack: false },
  { memPattern: true, prepack: false },
  { memPattern: false, prepack: true },
];
for (const { memPattern, prepack } of settings) {
  for (const quantization of quants) {
    for (const length of lengths) {
      const child = `${quantization}:${length}:${memPattern ? 'on' : 'off'}:${prepack ? 'on' : 'off'}`;
      const out = execFileSync(
        process.execPath,
        [...process.execArgv, import.meta.filename, '--model', flags.model, '--child', child],
        { encoding: 'utf8' },
      );
      rows.push({ quantization, length, memPattern, prepack, ...JSON.parse(out) });
      process.stderr.write(`[edge-memory] ${child}: ${rows.at(-1)!.peakMiB.toFixed(1)} MiB\n`);
    }
  }
}
const lines = [
  '| precision | L | ORT memory pattern | weight pre-packing | heap after load (MiB) | peak after DeciMamba prefill (MiB) | ≤100 MB | kept |',
  '|---|---|---|---|---|---|---|---|',
];
for (const r of rows) {
  const ok = r.peakMiB * 2 ** 20 <= TARGET_MIB * 1e6 ? 'yes' : 'no';
  lines.push(
    `| ${r.quantization === 'none' ? 'fp32' : r.quantization} | ${r.length} | ${r.memPattern ? 'on (before)' : 'off (now)'} | ${r.prepack ? 'on' : 'off (now)'} | ${r.loadedMiB.toFixed(1)} | ${r.peakMiB.toFixed(1)} | ${ok} | ${r.kept} |`,
  );
}
const table = lines.join('\n');
process.stdout.write(table + '\n');
const result = {
  command,
  date: new Date().toISOString(),
  model: flags.model,
  loadavg: loadavg(),
  workerLimitMiB: WORKER_LIMIT_MIB,
  targetMB: TARGET_MIB,
  rows,
};
writeFileSync(join(ROOT, 'bench/results/edge-memory.json'), JSON.stringify(result, null, 2) + '\n');
writeFileSync(
  join(ROOT, 'bench/results/edge-memory.md'),
  `# Edge engine memory at a DeciMamba prefill\n\n\`${command}\`\n\n` +
    `onnxruntime-web's wasm heap (what a Worker isolate holds for the engine; the JS heap comes on top), one fresh ` +
    `process per row, so the heap size after the prefill is its peak. The edge build's export (no lean step graph).\n\n${table}\n`,
);
