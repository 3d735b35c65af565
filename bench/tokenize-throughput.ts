// Tokenizer throughput for one pass of prompts (issue #15 item 3): 64 prompts of about 1K tokens each, tokenized in
// the calling thread (the runner's path before the pool) and on the tokenizer pool (mamba/token-pool.ts) with 1, 2
// and N threads. Every repetition encodes a fresh set of prompts (other windows of the model's held-out text), so the
// tokenizer's word cache only helps as much as it would on new requests; each configuration warms up on one set, then
// --reps rounds run every configuration on the round's set in turn (median reported). CPU only; prints a table, writes
// bench/results/tokenize-throughput.json.
//   npx tsx bench/tokenize-throughput.ts [--prompts 64] [--tokens 1024] [--reps 5] [--threads 1,2,N]
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { TokenPool } from '../mamba/token-pool.ts';
import { loadTokenizer } from '../mamba/tokenizer.ts';
import { scriptArgs } from '../mamba/script-args.ts';

const REPO = resolve(import.meta.dirname, '..');
const args = scriptArgs(
  'npx tsx bench/tokenize-throughput.ts [options]\nTokenizer throughput for one pass of prompts: in the calling thread ' +
    'and on the tokenizer pool with 1, 2 and N threads (N = os.availableParallelism()).',
  {
    model: { type: 'string', default: join(REPO, 'models/deciserve-mamba') },
    prompts: { type: 'string', default: '64' },
    tokens: { type: 'string', default: '1024' },
    reps: { type: 'string', default: '5' },
    /** Pool sizes; N is os.availableParallelism(). */
    threads: { type: 'string', default: '1,2,N' },
    out: { type: 'string', default: join(REPO, 'bench/results/tokenize-throughput.json') },
  },
);
const promptCount = Number(args.prompts);
const promptTokens = Number(args.tokens);
const reps = Number(args.reps);
const cores = availableParallelism();
const poolSizes = [
  ...new Set(
    args
      .threads!.split(',')
      .map((t) => (t === 'N' ? cores : Number(t)))
      .filter((n) => n >= 1),
  ),
];
const tokenizerPath = join(args.model!, 'tokenizer.json');
const tokenizer = loadTokenizer(JSON.parse(readFileSync(tokenizerPath, 'utf8')));

// Sets of prompts: consecutive windows of promptTokens tokens of the held-out text, decoded back to text.
const corpus = tokenizer.encode(readFileSync(join(args.model!, 'haystack.txt'), 'utf8'));
const sets = Array.from({ length: reps + 1 }, (_, s) =>
  Array.from({ length: promptCount }, (_, p) => {
    const start = ((s * promptCount + p) * promptTokens) % (corpus.length - promptTokens);
    return tokenizer.decode(corpus.slice(start, start + promptTokens));
  }),
);

interface Row {
  config: string;
  threads: number;
  tokens: number;
  repMs: number[];
  medianMs: number;
  tokensPerS: number;
  /** CPU time of the whole process (all threads) per set: what the work costs, whatever else shares the cores. */
  repCpuMs: number[];
  tokensPerCpuS: number;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const countTokens = (out: Array<number[] | Error>) =>
  out.reduce((n, ids) => n + (Array.isArray(ids) ? ids.length : 0), 0);

interface Config {
  config: string;
  threads: number;
  encode: (texts: string[]) => Promise<number>;
}
const inLoop = loadTokenizer(JSON.parse(readFileSync(tokenizerPath, 'utf8'))); // its own (cold) word cache
const pools = poolSizes.map((threads) => new TokenPool({ tokenizerPath }, threads));
const configs: Config[] = [
  {
    config: 'calling thread (before the pool)',
    threads: 1,
    encode: async (texts) => countTokens(texts.map((t) => inLoop.encode(t))),
  },
  ...pools.map((pool) => ({
    config: `pool, ${pool.size} thread${pool.size > 1 ? 's' : ''}`,
    threads: pool.size,
    encode: async (texts: string[]) => countTokens(await pool.encode(texts)),
  })),
];
await Promise.all(pools.map((pool) => pool.start()));
for (const c of configs) await c.encode(sets[0]!); // warm-up: JIT and thread start-up are not part of a pass
// Rounds: every configuration encodes the same fresh set in turn, so the load of a shared machine falls on all alike.
const repMs = configs.map(() => [] as number[]);
const repCpuMs = configs.map(() => [] as number[]);
const tokens = configs.map(() => 0);
for (const set of sets.slice(1)) {
  for (const [i, c] of configs.entries()) {
    const [t0, cpu0] = [performance.now(), process.cpuUsage()];
    tokens[i] = await c.encode(set);
    const cpu = process.cpuUsage(cpu0);
    repMs[i]!.push(performance.now() - t0);
    repCpuMs[i]!.push((cpu.user + cpu.system) / 1000);
  }
}
await Promise.all(pools.map((pool) => pool.close()));
const rows: Row[] = configs.map((c, i) => {
  const medianMs = median(repMs[i]!);
  const cpuMs = median(repCpuMs[i]!);
  const n = tokens[i]!;
  return {
    config: c.config,
    threads: c.threads,
    tokens: n,
    repMs: repMs[i]!,
    medianMs,
    tokensPerS: n / (medianMs / 1000),
    repCpuMs: repCpuMs[i]!,
    tokensPerCpuS: n / (cpuMs / 1000),
  };
});

const base = rows[0]!.tokensPerS;
console.log(
  `${promptCount} prompts × ${promptTokens} tokens, ${cores} cores (${cpus()[0]?.model}), load ${loadavg()[0]!.toFixed(1)}`,
);
console.log('| configuration | threads | tokens | median ms | tokens/s | × calling thread | tokens per CPU-s |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
for (const r of rows)
  console.log(
    `| ${r.config} | ${r.threads} | ${r.tokens} | ${r.medianMs.toFixed(1)} | ${Math.round(r.tokensPerS).toLocaleString('en')} | ${(r.tokensPerS / base).toFixed(2)} | ${Math.round(r.tokensPerCpuS).toLocaleString('en')} |`,
  );

mkdirSync(resolve(args.out!, '..'), { recursive: true });
writeFileSync(
  args.out!,
  `${JSON.stringify(
    {
      command: `npx tsx bench/tokenize-throughput.ts ${process.argv.slice(2).join(' ')}`.trim(),
      date: new Date().toISOString(),
      machine: { cores, cpu: cpus()[0]?.model, loadAverage1m: loadavg()[0], node: process.version },
      method:
        'each configuration has its own tokenizer(s) and encodes one warm-up set; then --reps rounds, each a fresh set of prompts (windows of the held-out text) encoded by every configuration in turn; median wall time of encoding one set, ids back in the calling thread; and the median CPU time of the whole process (all threads) per set',
      prompts: promptCount,
      tokensPerPrompt: promptTokens,
      rows,
    },
    null,
    2,
  )}\n`,
);
console.log(`wrote ${args.out}`);
