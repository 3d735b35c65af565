// The runner's GPU path on a real GPU (bundled by shared/device/pack.sh, run on the H200): `auto` must load the CUDA
// engine, and a passkey and a perplexity suite job (runner/pass/suite.ts, what `deciserve bench submit` sends) must run
// through runPass, the code a runner's engine thread runs. Prints a table, writes runner-device-check.json to --out.
// bench/results/runner-gpu-check-{bf16,fp32}.json came from commit 7a093fb, which ran the same prompts as hand-built
// per-length passes; runner-gpu-check-suite-job.json from 67864fc, which added a separate suite-job step.
//   bash ../shared/device/pack.sh runner/checks/gpu-check.ts, then: . .device/boot.sh && node .device/app/gpu-check.mjs --out $OUT
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SuiteResult } from '../../protocol/suite-spec.ts';
import { readHaystack } from '../../mamba/haystack-files.ts';
import { loadEngine } from '../engine/engine-factory.ts';
import { runnerJobRequestSchema } from '../../protocol/job-request.ts';
import { readModelDefaults } from '../model-defaults.ts';
import { runPass } from '../pass/pass.ts';
import { deviceCheckOptions } from './check-options.ts';

const { values: args } = parseArgs({
  options: {
    ...deviceCheckOptions('auto'),
    'passkey-lengths': { type: 'string', default: '1000,4000,16000,32000,64000' },
    'ppl-lengths': { type: 'string', default: '2000,16000' },
    samples: { type: 'string', default: '2' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(
    'usage: gpu-check [--model DIR] [--engine auto|cuda|cuda-fp32] [--out DIR] [--passkey-lengths 1000,...] [--ppl-lengths ...] [--samples N]',
  );
  process.exit(0);
}

const loaded = await loadEngine(args.engine as 'auto', args.model!);
console.log(`engine: ${loaded.kind} (${loaded.engine.name}), batched: ${loaded.engine.packsBatches}`);
const ctx = { modelId: 'deciserve-mamba', model: await readModelDefaults(args.model!, loaded.config.nLayer) };
const hay = readHaystack(loaded.tokenizer, join(args.model!, 'haystack.txt'));
const report: Record<string, unknown> = {
  command: `node .device/app/gpu-check.mjs ${process.argv.slice(2).join(' ')} (runner/checks/gpu-check.ts)`,
  engine: loaded.engine.name,
  kind: loaded.kind,
  passes: [] as unknown[],
};
const rows: string[] = [];

// Each task is one suite job through runPass, as the engine thread runs it: one sub-pass (one batch on the CUDA engine)
// per length, Mamba and DeciMamba prompts mixed. The sub-pass log gives the per-pass timings.
const suiteSchema = runnerJobRequestSchema({ maxPromptChars: 10_000_000, maxNewTokens: 64 });
for (const task of ['passkey', 'perplexity'] as const) {
  const lengths = args[task === 'passkey' ? 'passkey-lengths' : 'ppl-lengths']!.split(',').map(Number);
  const suite = {
    task,
    lengths,
    samples: Number(args.samples),
    seed: 2024,
    ...(task === 'passkey' ? { depths: [0, 0.25, 0.5, 0.75, 1] } : {}),
  };
  const request = suiteSchema.parse({ type: 'suite', model: 'deciserve-mamba', suite });
  const log = (f: Record<string, unknown>) => {
    const ms = f.ms as number;
    (report.passes as unknown[]).push({
      task,
      length: f.length,
      jobs: f.jobs,
      ms,
      promptTokens: f.promptTokens,
      failed: f.failed,
    });
    console.log(
      `${task} L=${f.length}: ${f.jobs} jobs in one pass, ${ms} ms, ${Math.round((f.promptTokens as number) / (ms / 1000))} prompt tok/s, failed ${f.failed}`,
    );
  };
  const [outcome] = await runPass(loaded, [{ id: `gpu-${task}`, request, createdAt: Date.now() }], ctx, {
    haystack: () => hay,
    log,
  });
  if (!outcome!.ok) throw new Error(`${task} suite failed: ${outcome!.error.message}`);
  const { summary, samples } = outcome!.result as unknown as SuiteResult;
  report[task] = { summary, samples };
  const fmt = (x: { value: number; failed: number } | undefined) =>
    x
      ? (task === 'passkey' ? `${(100 * x.value).toFixed(0)}%` : x.value.toFixed(1)) +
        (x.failed ? ` (${x.failed} failed)` : '')
      : '-';
  for (const length of lengths)
    rows.push(
      `| ${task} | ${length} | ${fmt(summary.byLength.mamba?.[String(length)])} | ${fmt(summary.byLength.decimamba?.[String(length)])} |`,
    );
}
await loaded.engine.dispose?.();
mkdirSync(args.out!, { recursive: true });
writeFileSync(join(args.out!, 'runner-device-check.json'), JSON.stringify(report, null, 1));
console.log(['| task | length | mamba | decimamba |', '|---|---|---|---|', ...rows].join('\n'));
