// Side-by-side: llama.cpp (node-llama-cpp's prebuilt addon, and native llama-bench when built) against deciserve's
// WASM engine on the same weights, one thread each, runs interleaved round by round so load drifts hit all alike.
// Run: npx tsx bench/peers/run.ts [--reps 5] [--long] [--no-build] [--decode 64] [--workerd] [--no-ort] [--out NAME]
// --no-ort leaves out the onnxruntime-web rows (mamba/wasm against llama.cpp only); --out names the result files.
// --workerd also runs the fp32 export in workerd (wrangler dev, test/workerd harness; after the rounds, not interleaved).
// Installs bench/peers' own node-llama-cpp on first use; writes bench/results/peers-llama-cpp.{json,md}
// (--decode-only: decode rounds alone, into peers-llama-cpp-decode.{json,md}).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { loadCheckpoint } from '../../mamba/checkpoint.ts';
import { ggufTokenizer, mambaGguf, type GgufPrecision } from '../../mamba/gguf/mamba-gguf.ts';
import { haystackText } from '../../mamba/passkey.ts';
import { scriptArgs } from '../../mamba/script-args.ts';
import { ensurePeerDeps } from './install.ts';
import { findLlamaBench, llamaBenchTps } from './llama-bench.ts';
import { openAddonPeer } from './llama-addon.ts';
import { checkLogits, type LogitCheck } from './logit-check.ts';
import { openWasmContenders, type Contender } from './wasm.ts';
import { workerdRows, type WorkerdRow } from './workerd.ts';

const ROOT = resolve(import.meta.dirname, '..', '..');
const RESULTS = join(ROOT, 'bench', 'results');
const TMP = join(RESULTS, 'tmp');
const flags = scriptArgs(
  'npx tsx bench/peers/run.ts [options]\nThe edge engines against llama.cpp (node-llama-cpp addon and native llama-bench) ' +
    'on a GGUF of the same weights, one thread, interleaved rounds; prefill at 128/512/2K (--long: 8K) and decode. ' +
    'Writes bench/results/<--out>.{json,md} (default peers-llama-cpp).',
  {
    reps: { type: 'string', default: '5' },
    decode: { type: 'string', default: '64' },
    long: { type: 'boolean' },
    'no-build': { type: 'boolean' },
    'decode-only': { type: 'boolean' },
    workerd: { type: 'boolean' },
    model: { type: 'string', default: 'models/deciserve-mamba' },
    'no-ort': { type: 'boolean' },
    out: { type: 'string' },
  },
);
const command = `npx tsx bench/peers/run.ts ${process.argv.slice(2).join(' ')}`.trim();
const log = (m: string) => process.stderr.write(`[peers] ${m}\n`);
const reps = Number(flags.reps);
const decodeSteps = Number(flags.decode);
const LENGTHS = flags['decode-only'] ? [] : flags.long ? [128, 512, 2048, 8192] : [128, 512, 2048];
const OUT = flags.out ?? (flags['decode-only'] ? 'peers-llama-cpp-decode' : 'peers-llama-cpp');
const THREADS = 1;

ensurePeerDeps(log);
const dir = resolve(ROOT, flags.model);
const ckpt = await loadCheckpoint(dir);
const { config } = ckpt;
const tok = ggufTokenizer(JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')), config.vocabSize);
mkdirSync(TMP, { recursive: true });
const gguf = (p: GgufPrecision) => {
  const path = join(TMP, `deciserve-mamba-${p}.gguf`);
  writeFileSync(path, mambaGguf(config, ckpt.weights, tok, { precision: p }));
  return path;
};
const ggufPaths = { f32: gguf('f32'), q8_0: gguf('q8_0') };
const text = haystackText(readFileSync(join(dir, 'haystack.txt'), 'utf8'));
const corpus = ckpt.tokenizer.encode(text.slice(0, 200_000));
const promptIds = (n: number) => {
  if (corpus.length >= n) return corpus.slice(0, n);
  return Array.from({ length: n }, (_, i) => corpus[i % corpus.length]); // repeats the text past its end
};
const loadStart = loadavg();

const contextSize = Math.max(512, ...LENGTHS) + decodeSteps + 8;
const addon = {
  f32: await openAddonPeer(ggufPaths.f32, { threads: THREADS, contextSize, batchSize: 512 }),
  q8_0: await openAddonPeer(ggufPaths.q8_0, { threads: THREADS, contextSize, batchSize: 512 }),
};
const wasm = await openWasmContenders(config, ckpt.weights, !flags['no-ort']);

// ---- logits and tokenization against the reference engine ------------------------------------------------------
const checkText = text.slice(0, 4000);
const checkIds = ckpt.tokenizer.encode(checkText).slice(0, 256);
const llamaIds = addon.f32.tokenize(checkText).slice(0, 256);
const tokenizerAgrees = llamaIds.length === checkIds.length && llamaIds.every((t, i) => t === checkIds[i]);
const checks: LogitCheck[] = await checkLogits(ckpt, checkIds, [
  { name: 'llama.cpp f32 (addon)', lastLogits: (ids) => addon.f32.logits(ids, config.vocabSize) },
  { name: 'llama.cpp q8_0 (addon)', lastLogits: (ids) => addon.q8_0.logits(ids, config.vocabSize) },
  ...wasm
    .filter((w) => w.prefillTps || w.name.includes('SIMD'))
    .map((w) => ({ name: w.name.replace(/,.*$/, ''), lastLogits: w.lastLogits, allLogits: w.allLogits })),
]);
for (const c of checks)
  log(
    `${c.name}: max |Δlogit| ${c.maxAbs.toExponential(2)}${c.meanKl !== undefined ? `, KL ${c.meanKl.toFixed(4)}` : ''}`,
  );

// ---- interleaved timings --------------------------------------------------------------------------------------
const bin = findLlamaBench(!flags['no-build'], log);
if (!bin) log('llama-bench not available: the native column is left out (the addon is the stand-in)');
const contenders: Contender[] = [
  ...(bin
    ? (['f32', 'q8_0'] as const).map(
        (p): Contender => ({
          name: `llama.cpp ${p} (native llama-bench)`,
          prefillTps: async (ids: number[]) =>
            llamaBenchTps(bin, ggufPaths[p], { prompt: ids.length, gen: 0, threads: THREADS }),
          decodeTps: async (_p: number[], n: number) =>
            llamaBenchTps(bin, ggufPaths[p], { prompt: 0, gen: n, threads: THREADS }),
        }),
      )
    : []),
  ...(['f32', 'q8_0'] as const).map(
    (p): Contender => ({
      name: `llama.cpp ${p} (addon)`,
      prefillTps: async (ids: number[]) => (ids.length / (await addon[p].prefillMs(ids))) * 1000,
      async decodeTps(prompt: number[], n: number) {
        const ms = await addon[p].decodeMs(prompt, n);
        this.lastDecodeCpuTps = (n / addon[p].lastDecodeCpuMs) * 1000;
        return (n / ms) * 1000;
      },
    }),
  ),
  ...wasm,
];
const samples = new Map<string, Map<string, number[]>>(contenders.map((c) => [c.name, new Map()]));
const push = (c: Contender, key: string, v: number) => {
  const m = samples.get(c.name)!;
  m.set(key, [...(m.get(key) ?? []), v]);
};
for (const c of contenders) {
  await c.prefillTps?.(promptIds(512));
  await c.decodeTps(promptIds(128), 8);
} // warm-up
for (let r = 0; r < reps; r++) {
  for (const length of LENGTHS)
    for (const c of contenders) if (c.prefillTps) push(c, `prefill${length}`, await c.prefillTps(promptIds(length)));
  for (const c of contenders) {
    push(c, 'decode', await c.decodeTps(promptIds(512), decodeSteps));
    if (c.lastDecodeCpuTps) push(c, 'decodeCpu', c.lastDecodeCpuTps);
  }
  log(`round ${r + 1}/${reps} done (load ${loadavg()[0].toFixed(2)})`);
}
const loadEnd = loadavg();
const workerd: WorkerdRow[] = flags.workerd
  ? await workerdRows(config, ckpt.weights, TMP, promptIds, log, dir, !flags['no-ort']).catch((err: Error) => {
      log(`workerd left out: ${err.message.split('\n')[0]}`);
      return [];
    })
  : [];

function workerdTable(ws: WorkerdRow[]): string {
  const node = (label: string, k: string) => rows.find((r) => r.engine === `deciserve WASM ${label}`)?.[k]?.medianTps;
  const out = [
    '| export in workerd | clock | prefill 128 | 512 | 2048 | decode | wasm heap MiB | vs Node WASM (same row above) |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const w of ws) {
    for (const [clock, f] of [
      ['inside the Worker (engine only)', w],
      ['client, whole HTTP request', w.client],
    ] as const) {
      const ratios = [128, 512, 2048].map(
        (l) => f.prefill[l]! / (node(w.nodeRow, `prefill${l}`) ?? node(w.prefillRow, `prefill${l}`) ?? NaN),
      );
      ratios.push(f.decode / (node(w.nodeRow, 'decode') ?? NaN));
      out.push(
        `| ${w.label} | ${clock} | ${[128, 512, 2048].map((l) => fmt(f.prefill[l]!)).join(' | ')} | ${fmt(f.decode)} | ` +
          `${w.wasmMemoryMiB.toFixed(1)} | ${ratios.map((r) => `${r.toFixed(2)}×`).join(' / ')} |`,
      );
    }
  }
  return out.join('\n');
}

interface Cell {
  medianTps: number;
  maxTps: number;
  minTps: number;
  samples: number[];
}
// ---- table + JSON -----------------------------------------------------------------------------------------------
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const keys = [...LENGTHS.map((l) => `prefill${l}`), 'decode', 'decodeCpu'];
const rows = contenders.map((c) => ({
  engine: c.name,
  ...Object.fromEntries(
    keys.flatMap((k) => {
      const xs = samples.get(c.name)!.get(k);
      return xs ? [[k, { medianTps: median(xs), maxTps: Math.max(...xs), minTps: Math.min(...xs), samples: xs }]] : [];
    }),
  ),
})) as ({ engine: string } & Record<string, Cell | undefined>)[];
const baseline =
  rows.find((r) => r.engine.includes('native')) ?? rows.find((r) => r.engine === 'llama.cpp f32 (addon)')!;
const fmt = (v: number) => Math.round(v).toLocaleString('en-US');
// CPU time exists only for in-process engines: that column's ratios are to the llama.cpp f32 addon.
const cpuBaseline = rows.find((r) => r.engine === 'llama.cpp f32 (addon)')!;
// int8 weights are compared with llama.cpp's q8_0 (native when built).
const q8Baseline =
  rows.find((r) => r.engine === 'llama.cpp q8_0 (native llama-bench)') ??
  rows.find((r) => r.engine === 'llama.cpp q8_0 (addon)')!;
const baselineOf = (r: (typeof rows)[number]) => (/int8|q8_0/.test(r.engine) ? q8Baseline : baseline);
const cell = (r: (typeof rows)[number], k: string) => {
  const [c, b] = [r[k], (k === 'decodeCpu' ? cpuBaseline : baselineOf(r))[k]];
  return c && b ? `${fmt(c.medianTps)} (${fmt(c.maxTps)}) ${(c.medianTps / b.medianTps).toFixed(2)}×` : '–';
};
const header = `| engine | ${[...LENGTHS.map((l) => `prefill ${l}`), 'decode', 'decode, per CPU second (× addon)'].join(' | ')} |`;
const lines = [header, `|---|${keys.map(() => '---|').join('')}`];
for (const r of rows) {
  lines.push(`| ${r.engine} | ${keys.map((k) => cell(r, k)).join(' | ')} |`);
}
const note =
  `tok/s by wall clock, median (best = min time) of ${reps} interleaved rounds, ratio of medians to ${baseline.engine} ` +
  `(int8 and q8_0 rows: to ${q8Baseline.engine}); ` +
  `${THREADS} thread; – = the prefill graph of the row above (ORT variants); decode = ${decodeSteps} greedy steps after a 512-token prompt (llama-bench: from an empty ` +
  `state, its own tokens); "per CPU second" = steps / process CPU time (user + system, every thread) of the same decode ` +
  `runs, in-process engines only (llama-bench runs as its own process; ratios there are to llama.cpp f32 (addon)), less sensitive to other load on the machine; load average ${loadStart.map((v) => v.toFixed(2)).join('/')} at start, ` +
  `${loadEnd.map((v) => v.toFixed(2)).join('/')} at end (2 cores, shared).`;
const table = lines.join('\n');
process.stdout.write(`${table}\n\n${note}\n`);
const result = {
  command,
  date: new Date().toISOString(),
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, loadavgStart: loadStart, loadavgEnd: loadEnd },
  model: { source: flags.model, params: 6305024, config },
  peer: {
    package: 'node-llama-cpp@3.22.1 (@node-llama-cpp/linux-x64 prebuilt)',
    llamaBench: bin ? "built from node-llama-cpp's shipped llama.cpp source (GGML_NATIVE=ON, Release)" : null,
  },
  threads: THREADS,
  reps,
  decodeSteps,
  lengths: LENGTHS,
  tokenizerAgrees,
  logitChecks: checks,
  rows,
  baseline: baseline.engine,
  note,
  workerd,
};
writeFileSync(join(RESULTS, `${OUT}.json`), JSON.stringify(result, null, 2) + '\n');
writeFileSync(
  join(RESULTS, `${OUT}.md`),
  `# deciserve WASM vs llama.cpp, same weights\n\n\`${command}\`\n\n${table}\n\n${note}\n\n` +
    `Tokenizer (GGUF gpt2 + starcoder pre-tokenizer) agrees with tokenizer.json on a 256-token text: ${tokenizerAgrees}.\n\n` +
    `| logits vs the TS reference (256-token prompt) | max abs diff (last position) | mean KL, all positions |\n|---|---|---|\n` +
    checks.map((c) => `| ${c.name} | ${c.maxAbs.toExponential(2)} | ${c.meanKl?.toFixed(4) ?? '–'} |`).join('\n') +
    '\n' +
    (workerd.length
      ? `\n## workerd (wrangler dev, after the rounds; medians, tok/s; clock per row: inside the Worker or the client)\n\n${workerdTable(workerd)}\n\n` +
        'Inside the Worker: the harness times engine.prefill / generate() between two timer turns (workerd moves ' +
        'its clock at I/O on Cloudflare, freely in wrangler dev; 1 ms resolution), so the row measures the engine ' +
        'as the Node rows do; ' +
        'decode = 64 / the 64 steps of generate(65) as generate() timed them, median of 5 (before 2026-12-06: the ' +
        'difference of generate 65 and generate 1, which moved 20-40% between runs). Client: the same requests timed ' +
        'by the benchmark over local HTTP, decode = 64 / (generate 65 − generate 1) ' +
        '(request, JSON body and a fixed round trip of tens of ms included).\n'
      : ''),
);
if (workerd.length) process.stdout.write(`\n${workerdTable(workerd)}\n`);
for (const a of Object.values(addon)) await a.dispose();
for (const w of wasm) await w.dispose();
process.exit(0);
