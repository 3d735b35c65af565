// The runner's GPU path on a real GPU (bundled by shared/device/pack.sh, run on the H200): `auto` must load the CUDA
// engine, and passkey and perplexity suites (runner/suite.ts, the jobs `deciserve bench submit` sends) must
// run through runPass, the code a runner's engine thread runs, one pass per context length, with plain Mamba and
// DeciMamba jobs mixed in the same batch. Prints a table, and writes runner-device-check.json to --out.
//   bash ../shared/device/pack.sh runner/gpu-check.ts, then: . .device/boot.sh && node .device/app/gpu-check.mjs --out $OUT
import { parseArgs } from 'node:util';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildSuiteJobs, judgeSample, summarizeSuite, type SampleResult, type Task } from './suite.ts';
import { encodeCorpus, haystackText } from '../mamba/passkey.ts';
import { loadEngine } from './engine-factory.ts';
import { jobRequestSchema, runnerJobRequestSchema } from './job-request.ts';
import { readModelDefaults } from './model-defaults.ts';
import { runPass, type PassItem } from './pass.ts';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/deciserve-mamba' },
    engine: { type: 'string', default: 'auto' },
    out: { type: 'string', default: process.env.OUT ?? '.device-out' },
    'passkey-lengths': { type: 'string', default: '1000,4000,16000,32000,64000' },
    'ppl-lengths': { type: 'string', default: '2000,16000' },
    samples: { type: 'string', default: '2' },
    /** Also run one `type: "suite"` job through runPass (what `deciserve bench submit` sends): these lengths. */
    'suite-lengths': { type: 'string', default: '1000,16000,64000' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log('usage: gpu-check [--model DIR] [--engine auto|cuda|cuda-fp32] [--out DIR] [--passkey-lengths 1000,...] [--ppl-lengths ...] [--samples N]');
  process.exit(0);
}

const loaded = await loadEngine(args.engine as 'auto', args.model!);
console.log(`engine: ${loaded.kind} (${loaded.engine.name}), batched: ${loaded.batch !== undefined}`);
const ctx = { modelId: 'deciserve-mamba', model: await readModelDefaults(args.model!, loaded.config.nLayer) };
const schema = jobRequestSchema({ maxPromptChars: 10_000_000, maxNewTokens: 64 });
const hay = encodeCorpus(loaded.tokenizer, haystackText(readFileSync(join(args.model!, 'haystack.txt'), 'utf8')));
const report: Record<string, unknown> = { command: `node .device/app/gpu-check.mjs ${process.argv.slice(2).join(' ')} (runner/gpu-check.ts)`, engine: loaded.engine.name, kind: loaded.kind, passes: [] as unknown[] };
const rows: string[] = [];

for (const task of ['passkey', 'perplexity'] as Task[]) {
  const lengths = args[task === 'passkey' ? 'passkey-lengths' : 'ppl-lengths']!.split(',').map(Number);
  const spec = { task, lengths, depths: [0, 0.25, 0.5, 0.75, 1], samples: Number(args.samples), seed: 2024, variants: ['mamba', 'decimamba'] as const, model: 'deciserve-mamba' };
  const jobs = buildSuiteJobs({ ...spec, variants: [...spec.variants] }, loaded.tokenizer, hay, `gpu-${task}`);
  const samples: SampleResult[] = [];
  for (const length of lengths) {
    const group = jobs.filter((j) => j.length === length);
    const items: PassItem[] = group.map((j, i) => ({ id: `${task}-${length}-${i}`, request: schema.parse(j.body), createdAt: Date.now() }));
    const t0 = performance.now();
    const outcomes = await runPass(loaded, items, ctx);
    const ms = performance.now() - t0;
    const promptTokens = outcomes.reduce((a, o) => a + (o.ok ? o.stats.promptTokens : 0), 0);
    (report.passes as unknown[]).push({ task, length, jobs: items.length, ms, promptTokens, failed: outcomes.filter((o) => !o.ok).map((o) => !o.ok && o.error) });
    outcomes.forEach((o, i) => {
      const j = group[i]!;
      const base = { key: j.key, task, length, depth: j.depth, sample: j.sample, variant: j.variant, jobId: items[i]!.id, latencyMs: ms };
      samples.push(o.ok ? { ...base, ok: true, promptTokens: o.stats.promptTokens, ...judgeSample(task, j, o.result) } : { ...base, ok: false, error: o.error.message });
    });
    console.log(`${task} L=${length}: ${items.length} jobs in one pass, ${ms.toFixed(0)} ms, ${Math.round(promptTokens / (ms / 1000))} prompt tok/s, failed ${outcomes.filter((o) => !o.ok).length}`);
  }
  const summary = summarizeSuite(task, samples);
  report[task] = { summary, samples };
  for (const length of lengths) {
    const v = (variant: string) => summary.byLength[variant]?.[String(length)];
    const fmt = (x: { value: number; n: number; failed: number } | undefined) => (x ? (task === 'passkey' ? `${(100 * x.value).toFixed(0)}%` : x.value.toFixed(1)) + (x.failed ? ` (${x.failed} failed)` : '') : '-');
    rows.push(`| ${task} | ${length} | ${fmt(v('mamba'))} | ${fmt(v('decimamba'))} |`);
  }
}
// The suite job itself, as the engine thread runs it: one job in, sub-passes of ≤64 prompts, one result with every sample.
if (args['suite-lengths']) {
  const request = runnerJobRequestSchema({ maxPromptChars: 10_000_000, maxNewTokens: 64 }).parse({
    type: 'suite', model: 'deciserve-mamba', suite: { task: 'passkey', lengths: args['suite-lengths'].split(',').map(Number), depths: [0, 0.5, 1], samples: Number(args.samples), seed: 7 },
  });
  const t0 = performance.now();
  const [outcome] = await runPass(loaded, [{ id: 'gpu-suite', request, createdAt: Date.now() }], ctx, { haystack: () => hay });
  const ms = performance.now() - t0;
  if (!outcome!.ok) throw new Error(`suite job failed: ${outcome!.error.message}`);
  const result = outcome!.result as unknown as { summary: { byLength: Record<string, Record<string, { value: number; n: number; failed: number }>> }; samples: unknown[] };
  report.suiteJob = { spec: request, ms, summary: result.summary, samples: result.samples.length };
  console.log(`suite job: ${result.samples.length} samples in ${ms.toFixed(0)} ms`);
  for (const [variant, byLength] of Object.entries(result.summary.byLength)) {
    rows.push(`| suite job passkey | ${variant} | ${Object.entries(byLength).map(([L, c]) => `${L}: ${(100 * c.value).toFixed(0)}% (n=${c.n}${c.failed ? `, ${c.failed} failed` : ''})`).join(', ')} | |`);
  }
}
await loaded.engine.dispose?.();
mkdirSync(args.out!, { recursive: true });
writeFileSync(join(args.out!, 'runner-device-check.json'), JSON.stringify(report, null, 1));
console.log(['| task | length | mamba | decimamba |', '|---|---|---|---|', ...rows].join('\n'));
