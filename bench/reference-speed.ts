// Prefill and decode speed of the reference engine: the baseline later engines (ONNX, CUDA) are compared with.
// Run: npx tsx bench/reference-speed.ts [--out <file>]   (writes bench/results/tmp/reference-speed.json; the committed
// figures are bench/results/reference-speed.json, replaced only when asked: --out bench/results/reference-speed.json)
import { writeFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { scriptArgs } from '../mamba/script-args.ts';
import { randomConfig, randomWeights } from '../mamba/random-checkpoint.ts';
import { ReferenceEngine } from '../mamba/reference/index.ts';
import { createRng } from '../mamba/rng.ts';

const flags = scriptArgs(
  'npx tsx bench/reference-speed.ts [--out <file>]\nPrefill and decode speed of the reference engine ' +
    '(default output bench/results/tmp/reference-speed.json).',
  { out: { type: 'string' } },
);
const LENGTHS = [512, 2048];
const DECODE_STEPS = 64;

const config = randomConfig({ dModel: 256, nLayer: 4, dState: 16, dConv: 4, expand: 2, vocabSize: 50280 });
const engine = new ReferenceEngine(config, randomWeights(config, 0));
const rng = createRng(1);
const ids = (n: number) => Array.from({ length: n }, () => rng.int(config.vocabSize));

async function timeIt(fn: () => Promise<unknown>, reps: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[Math.floor(reps / 2)]!; // median
}

await engine.prefill(ids(128)); // warm up the JIT

const results: { mode: string; length: number; reps: number; ms: number; tokensPerSecond: number }[] = [];
for (const length of LENGTHS) {
  const input = ids(length);
  const reps = length <= 512 ? 3 : 1;
  const ms = await timeIt(() => engine.prefill(input), reps);
  results.push({ mode: 'prefill', length, reps, ms, tokensPerSecond: (length / ms) * 1000 });
}
{
  let state = (await engine.prefill(ids(64))).state;
  const tokens = ids(DECODE_STEPS);
  const ms = await timeIt(async () => {
    for (const t of tokens) state = (await engine.step(t, state)).state;
  }, 1);
  results.push({ mode: 'step', length: DECODE_STEPS, reps: 1, ms, tokensPerSecond: (DECODE_STEPS / ms) * 1000 });
}

console.log(
  `reference engine, d_model ${config.dModel}, ${config.nLayer} layers, d_state ${config.dState}, vocab ${config.vocabSize}`,
);
console.log('mode     tokens        ms     tok/s');
for (const r of results)
  console.log(
    `${r.mode.padEnd(7)} ${String(r.length).padStart(7)} ${r.ms.toFixed(0).padStart(9)} ${r.tokensPerSecond.toFixed(0).padStart(9)}`,
  );

const out =
  flags.out !== undefined
    ? resolve(flags.out)
    : join(dirname(fileURLToPath(import.meta.url)), 'results', 'tmp', 'reference-speed.json');
mkdirSync(dirname(out), { recursive: true });
writeFileSync(
  out,
  JSON.stringify(
    {
      command: `npx tsx bench/reference-speed.ts ${process.argv.slice(2).join(' ')}`.trim(),
      date: new Date().toISOString(),
      node: process.version,
      cpu: cpus()[0]?.model ?? 'unknown',
      cores: cpus().length,
      // The dev VM is shared: a high load average means other jobs competed for the cores during the run.
      loadAverage1m: loadavg()[0],
      model: {
        dModel: config.dModel,
        nLayer: config.nLayer,
        dState: config.dState,
        dConv: config.dConv,
        expand: config.expand,
        vocabSize: config.vocabSize,
      },
      results,
    },
    null,
    2,
  ) + '\n',
);
console.log(`wrote ${out}`);
