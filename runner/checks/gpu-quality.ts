// Passkey accuracy on the held-out haystacks (bench/quality/haystacks/<set>-<split>.txt), each (set, length) one suite
// job through runPass on the runner's engine (CUDA on a GPU), Mamba vs DeciMamba (the model's length-adaptive policy)
// vs the paper's fixed L_base. Counts per depth, 95% Wilson intervals; the JSON is rewritten after every job.
//   bash ../shared/device/pack.sh runner/checks/gpu-quality.ts, then: . .device/boot.sh && node .device/app/gpu-quality.mjs --out $OUT
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SampleResult, SuiteResult, Variant } from '../../protocol/suite-spec.ts';
import { HELD_OUT_SWEEP_OPTIONS, readHeldOutHaystacks } from '../../mamba/haystack-files.ts';
import { formatAccuracy, wilsonInterval } from '../../mamba/stats.ts';
import { loadEngine } from '../engine/engine-factory.ts';
import { runnerJobRequestSchema } from '../../protocol/job-request.ts';
import { readModelDefaults } from '../model-defaults.ts';
import { runPass } from '../pass/pass.ts';
import { deviceCheckOptions } from './check-options.ts';

const { values: args } = parseArgs({
  options: {
    ...deviceCheckOptions('auto'),
    ...HELD_OUT_SWEEP_OPTIONS,
    lengths: { type: 'string', default: '1000,2000,4000,8000,16000,32000,64000,128000,256000' },
    samples: { type: 'string', default: '4' },
    variants: { type: 'string', default: 'mamba,decimamba,decimamba-fixed' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(
    'usage: gpu-quality [--model DIR] [--engine auto|cuda|cuda-fp32|onnx] [--out DIR] [--split val|test] [--sets a,b]\n' +
      '                   [--lengths 1000,...] [--depths 0,0.5,1] [--samples N per set x depth] [--variants mamba,decimamba,decimamba-fixed]',
  );
  process.exit(0);
}

const loaded = await loadEngine(args.engine as 'auto', args.model!);
const ctx = { modelId: 'deciserve-mamba', model: await readModelDefaults(args.model!, loaded.config.nLayer) };
const sets = args.sets!.split(',');
const lengths = args.lengths!.split(',').map(Number);
const depths = args.depths!.split(',').map(Number);
const variants = args.variants!.split(',') as Variant[];
const hays = readHeldOutHaystacks(loaded.tokenizer, args.haystacks!, sets, args.split!);
const schema = runnerJobRequestSchema({ maxPromptChars: 10_000_000, maxNewTokens: 64 });
/** set → variant → length → depth → [correct, n] */
const counts: Record<string, Record<string, Record<string, Record<string, [number, number]>>>> = {};
const passes: unknown[] = [];
const report = {
  command: `node .device/app/gpu-quality.mjs ${process.argv.slice(2).join(' ')} (runner/checks/gpu-quality.ts)`,
  engine: loaded.engine.name,
  kind: loaded.kind,
  split: args.split,
  sets,
  lengths,
  depths,
  samplesPerCell: Number(args.samples),
  policy: { fixed: ctx.model.decimation, lBaseByLength: ctx.model.lBaseByLength ?? null, trainLen: ctx.model.trainLen },
  counts,
  passes,
};
mkdirSync(args.out!, { recursive: true });
const save = () => writeFileSync(join(args.out!, `gpu-quality-${args.split}.json`), JSON.stringify(report, null, 1));

/** Samples that did not run, per "variant length": reported apart from wrong answers. */
const failed: Record<string, number> = {};
for (const length of lengths) {
  for (const [i, set] of sets.entries()) {
    const suite = {
      task: 'passkey',
      lengths: [length],
      depths,
      samples: Number(args.samples),
      seed: 2024 + i,
      variants,
    };
    const request = schema.parse({ type: 'suite', model: 'deciserve-mamba', suite });
    const log = (f: Record<string, unknown>) =>
      passes.push({ set, length, jobs: f.jobs, ms: f.ms, promptTokens: f.promptTokens, failed: f.failed });
    const [outcome] = await runPass(loaded, [{ id: `q-${set}-${length}`, request, createdAt: Date.now() }], ctx, {
      haystack: () => hays[set]!,
      log,
    });
    if (!outcome!.ok) throw new Error(`${set} ${length}: ${outcome!.error.message}`);
    const result = outcome!.result as unknown as SuiteResult;
    for (const s of result.samples as SampleResult[]) {
      const cell = ((((counts[set] ??= {})[s.variant] ??= {})[String(length)] ??= {})[String(s.depth)] ??= [0, 0]);
      cell[0] += s.ok && s.correct ? 1 : 0;
      cell[1] += 1;
    }
    // a sample that did not run is not a wrong answer: the suite's summary counts them; say why (first reason a pass)
    for (const v of variants) {
      const n = result.summary.byLength[v]?.[String(length)]?.failed ?? 0;
      failed[`${v} ${length}`] = (failed[`${v} ${length}`] ?? 0) + n;
    }
    const firstFailure = result.samples.find((s) => !s.ok);
    if (firstFailure)
      console.log(`FAILED ${set} ${length} ${firstFailure.variant}: ${firstFailure.error ?? 'no reason'}`);
    save();
  }
  console.log(`L=${length}: ${variants.map((v) => `${v} ${formatAccuracy(...total(v, length))}`).join('  ')}`);
}
await loaded.engine.dispose?.();

function total(variant: string, length: number, depth?: number): [number, number] {
  let k = 0;
  let n = 0;
  for (const set of sets) {
    for (const [d, [c, m]] of Object.entries(counts[set]?.[variant]?.[String(length)] ?? {})) {
      if (depth === undefined || Number(d) === depth) [k, n] = [k + c, n + m];
    }
  }
  return [k, n];
}

const summary = lengths.map((length) => ({
  length,
  ...Object.fromEntries(
    variants.map((v) => {
      const [k, n] = total(v, length);
      const worstDepth = Math.min(
        ...depths.map((d) => {
          const [a, b] = total(v, length, d);
          return b ? a / b : 1;
        }),
      );
      return [
        v,
        {
          correct: k,
          n,
          failed: failed[`${v} ${length}`] ?? 0,
          accuracy: k / n,
          ci95: wilsonInterval(k, n),
          worstDepth,
        },
      ];
    }),
  ),
}));
Object.assign(report, { summary });
save();
console.log(`| length | ${variants.join(' | ')} | ${variants.map((v) => `${v} worst depth`).join(' | ')} |`);
console.log(`|---|${variants.map(() => '---|---|').join('')}`);
for (const row of summary) {
  const r = row as unknown as Record<string, { correct: number; n: number; failed: number; worstDepth: number }>;
  const cell = (v: string) =>
    formatAccuracy(r[v]!.correct, r[v]!.n) + (r[v]!.failed ? `, ${r[v]!.failed} did not run` : '');
  console.log(
    `| ${row.length} | ${variants.map(cell).join(' | ')} | ${variants.map((v) => `${Math.round(100 * r[v]!.worstDepth)}%`).join(' | ')} |`,
  );
}
