// End-to-end pass throughput on the CUDA engine (issue #15 item 3: a pass of 64 × 1K prompts at ≥500K prompt tok/s,
// tokenize + prefill). Runs runPass, the code an engine thread runs, on several passes of completion jobs
// (max_tokens 1, greedy: one batched prefill and the first token), in four modes:
//   inline       tokenized one prompt after another on this thread, then the engine (the path before the pool)
//   pool         tokenized on the tokenizer pool (mamba/token-pool.ts), then the engine, one pass after another
//   overlap      the pool, with pass N+1 started while pass N is on the engine (the engine still runs one at a time)
//   engine-only  ids tokenized beforehand: the engine's own ceiling for these passes
// Each mode: one warm-up pass, then --passes passes timed as a whole (prompt tokens / wall time); --reps times, median.
// Every pass has its own prompts (windows of the model's held-out text). Prints a table, writes
// pass-throughput.json to --out.
//   bash ../shared/device/pack.sh runner/checks/pass-throughput.ts mamba/token-pool-thread.ts
//   . .device/boot.sh && node .device/app/pass-throughput.mjs --out $OUT
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { join } from 'node:path';
import { scriptArgs } from '../../mamba/script-args.ts';
import { defaultPoolSize, TokenPool } from '../../mamba/token-pool.ts';
import { jobRequestSchema, type JobRequest } from '../../protocol/job-request.ts';
import { loadEngine } from '../engine/engine-factory.ts';
import { readModelDefaults } from '../model-defaults.ts';
import { runPass } from '../pass/pass.ts';
import { deviceCheckOptions } from './check-options.ts';
import type { PassHooks, PassItem, PassOutcome } from '../pass/pass-types.ts';

const args = scriptArgs(
  'node .device/app/pass-throughput.mjs [options]\nEnd-to-end pass throughput (tokenize + prefill) on the CUDA ' +
    'engine in the modes inline, pool, overlap, engine-only; writes JSON to --out.',
  {
    ...deviceCheckOptions('cuda'),
    prompts: { type: 'string', default: '64' },
    tokens: { type: 'string', default: '1024' },
    passes: { type: 'string', default: '6' },
    reps: { type: 'string', default: '3' },
    threads: { type: 'string', default: String(defaultPoolSize()) },
    modes: { type: 'string', default: 'inline,pool,overlap,engine-only' },
  },
);
const [promptCount, promptTokens, passCount, reps] = ['prompts', 'tokens', 'passes', 'reps'].map((k) =>
  Number(args[k as 'prompts']),
) as [number, number, number, number];
const modes = args.modes!.split(',');

const loaded = await loadEngine(args.engine as 'cuda', args.model!);
console.log(`engine: ${loaded.kind} (${loaded.engine.name}), batched: ${loaded.engine.packsBatches}`);
const ctx = { modelId: 'deciserve-mamba', model: await readModelDefaults(args.model!, loaded.config.nLayer) };
const tokenizerPath = join(args.model!, 'tokenizer.json');
const pool = new TokenPool(
  { tokenizerPath, configPath: join(args.model!, 'tokenizer_config.json') },
  Number(args.threads),
);
await pool.start();

// Passes of prompts: consecutive windows of the held-out text, promptTokens tokens each, decoded back to text.
const corpus = loaded.tokenizer.encode(readFileSync(join(args.model!, 'haystack.txt'), 'utf8'));
const schema = jobRequestSchema({ maxPromptChars: 10_000_000, maxNewTokens: 16 });
let nextWindow = 0;
function freshPass(tag: string): PassItem[] {
  return Array.from({ length: promptCount }, (_, p) => {
    const start = (nextWindow++ * promptTokens) % (corpus.length - promptTokens);
    const prompt = loaded.tokenizer.decode(corpus.slice(start, start + promptTokens));
    const request = schema.parse({
      type: 'completion',
      model: 'deciserve-mamba',
      prompt,
      max_tokens: 1,
      temperature: 0,
    });
    return { id: `${tag}-${p}`, request, createdAt: Date.now() };
  });
}

const onPool: PassHooks = { tokenize: (texts) => pool.encode(texts) };
/** engine-only: the pass's ids were encoded before the clock started; the hook hands them over. */
function pretokenized(passes: PassItem[][]): PassHooks {
  const ids = new Map<string, number[]>();
  for (const pass of passes)
    for (const { request } of pass) {
      const { prompt } = request as JobRequest;
      ids.set(prompt, loaded.tokenizer.encode(prompt));
    }
  return { tokenize: async (texts) => texts.map((t) => ids.get(t)!) };
}

interface Run {
  wallMs: number;
  promptTokens: number;
  engineMs: number[];
  failed: number;
}
async function runMode(mode: string, passes: PassItem[][]): Promise<Run> {
  const hooks = mode === 'inline' ? {} : mode === 'engine-only' ? pretokenized(passes) : onPool;
  const t0 = performance.now();
  let outcomes: PassOutcome[][];
  if (mode === 'overlap') {
    // Two passes in flight: pass N+1 is tokenized on the pool while pass N holds the engine.
    outcomes = [];
    let previous: Promise<PassOutcome[]> | null = null;
    for (const pass of passes) {
      const current = runPass(loaded, pass, ctx, hooks);
      if (previous) outcomes.push(await previous);
      previous = current;
    }
    if (previous) outcomes.push(await previous);
  } else {
    outcomes = [];
    for (const pass of passes) outcomes.push(await runPass(loaded, pass, ctx, hooks));
  }
  const wallMs = performance.now() - t0;
  const ok = outcomes.flat().filter((o) => o.ok);
  return {
    wallMs,
    promptTokens: ok.reduce((n, o) => n + o.stats.promptTokens, 0),
    engineMs: outcomes.map((pass) => pass.find((o) => o.ok)?.stats.prefillMs ?? 0),
    failed: outcomes.flat().length - ok.length,
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const rows: Array<Record<string, unknown>> = [];
let warm = 0;
for (const mode of modes) {
  await runMode(mode, [freshPass(`warm${warm++}`)]); // JIT, NVRTC kernels, pool threads' caches
  const runs: Run[] = [];
  for (let r = 0; r < reps; r++)
    runs.push(
      await runMode(
        mode,
        Array.from({ length: passCount }, (_, p) => freshPass(`${mode}-${r}-${p}`)),
      ),
    );
  const tokPerS = runs.map((run) => run.promptTokens / (run.wallMs / 1000));
  const row = {
    mode,
    passes: passCount,
    promptsPerPass: promptCount,
    promptTokens: runs[0]!.promptTokens,
    medianPromptTokPerS: median(tokPerS),
    repPromptTokPerS: tokPerS,
    medianWallMsPerPass: median(runs.map((run) => run.wallMs / passCount)),
    medianEngineMsPerPass: median(runs.flatMap((run) => run.engineMs)),
    failed: runs.reduce((n, run) => n + run.failed, 0),
  };
  rows.push(row);
  console.log(`${mode}: ${Math.round(row.medianPromptTokPerS).toLocaleString('en')} prompt tok/s`);
}
await pool.close();
await loaded.engine.dispose?.();

const report = {
  command: `node .device/app/pass-throughput.mjs ${process.argv.slice(2).join(' ')} (runner/checks/pass-throughput.ts)`,
  date: new Date().toISOString(),
  engine: loaded.engine.name,
  machine: { cores: availableParallelism(), cpu: cpus()[0]?.model, node: process.version },
  tokenThreads: pool.size,
  method:
    'runPass on completion jobs (max_tokens 1, greedy); per mode one warm-up pass, then --reps runs of --passes fresh passes, prompt tokens / wall time of a run, median; engine ms = the batched pass inside the engine turn',
  rows,
};
mkdirSync(args.out!, { recursive: true });
writeFileSync(join(args.out!, 'pass-throughput.json'), `${JSON.stringify(report, null, 1)}\n`);
console.log(`${promptCount} prompts × ${promptTokens} tokens a pass, ${pool.size} tokenizer threads, ${report.engine}`);
console.log('| mode | prompt tok/s | wall ms / pass | engine ms / pass | failed |');
console.log('| --- | ---: | ---: | ---: | ---: |');
for (const r of rows)
  console.log(
    `| ${r.mode} | ${Math.round(r.medianPromptTokPerS as number).toLocaleString('en')} | ${(r.medianWallMsPerPass as number).toFixed(1)} | ${(r.medianEngineMsPerPass as number).toFixed(1)} | ${r.failed} |`,
  );
