// Passkey retrieval through the whole public path: POST /v1/jobs at the edge → runner (queue, engine) → result in S3,
// read back through the job's presigned URL. Prompts come from the held-out haystack sets (bench/quality/haystacks,
// the test split unless told), built as mamba/passkey.ts builds them and sent as text, as a user would send them.
// Samples interleave the variants so a slow machine or a stop part-way still leaves a fair comparison.
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { loadFolderTokenizer } from '../../mamba/checkpoint.ts';
import { HELD_OUT_SWEEP_OPTIONS, readHeldOutHaystacks } from '../../mamba/haystack-files.ts';
import { buildPasskeyPrompt, judgePasskey, passkeyRng } from '../../mamba/passkey.ts';
import { formatAccuracy, wilsonInterval } from '../../mamba/stats.ts';
import type { CompletionResult, ResultExtras } from '../../protocol/results.ts';
import { JobsClient, type JobView } from './jobs-client.ts';

const { values: args } = parseArgs({
  options: {
    'edge-url': { type: 'string', default: 'http://127.0.0.1:8787' },
    'api-key': { type: 'string' },
    model: { type: 'string', default: 'models/deciserve-mamba' },
    ...HELD_OUT_SWEEP_OPTIONS,
    lengths: { type: 'string', default: '16000,64000' },
    samples: { type: 'string', default: '2' }, // prompts per set × depth cell and length
    variants: { type: 'string', default: 'decimamba,mamba' },
    out: { type: 'string', default: 'bench/results/api-passkey-cpu.json' },
    resume: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  console.log(
    'usage: node --import tsx bench/quality/api-passkey.ts [--edge-url URL] [--api-key KEY] [--lengths 16000,64000]\n' +
      '  [--samples N per set×depth] [--variants decimamba,mamba] [--split test|val] [--sets a,b] [--out FILE] [--resume]\n' +
      'Needs a running stack (npm run stack). The key defaults to .data/stack/api-key. decimamba = decimation "auto",\n' +
      'mamba = "off". Writes counts per set/variant/length/depth and a table with Wilson 95% intervals. --resume keeps\n' +
      'the jobs already in --out (same prompts: they are drawn from fixed seeds) and runs only the missing ones.',
  );
  process.exit(0);
}
const apiKey = args['api-key'] ?? process.env.DECISERVE_API_KEY ?? readFileSync('.data/stack/api-key', 'utf8').trim();
const client = new JobsClient({ via: 'edge', url: args['edge-url']!, apiKey });
const tokenizer = await loadFolderTokenizer(args.model!);
const sets = args.sets!.split(',');
const lengths = args.lengths!.split(',').map(Number);
const depths = args.depths!.split(',').map(Number);
const variants = args.variants!.split(',') as Array<'decimamba' | 'mamba'>;
const samples = Number(args.samples);
const hays = readHeldOutHaystacks(tokenizer, args.haystacks!, sets, args.split!);

type Cell = [number, number];
interface JobRecord {
  id: string;
  set: string;
  variant: string;
  length: number;
  depth: number;
  sample: number;
  status: string;
  correct: boolean;
  promptTokens?: number;
  seconds: number;
  kept?: unknown;
}
const counts: Record<string, Record<string, Record<string, Record<string, Cell>>>> = {};
const previous =
  args.resume && existsSync(args.out!)
    ? (JSON.parse(readFileSync(args.out!, 'utf8')) as { jobs: JobRecord[]; command: string | string[] })
    : null;
const jobs: JobRecord[] = previous?.jobs ?? [];
const jobKey = (j: Pick<JobRecord, 'set' | 'variant' | 'length' | 'depth' | 'sample'>) =>
  `${j.set}/${j.variant}/${j.length}/${j.depth}/${j.sample}`;
const doneKeys = new Set(jobs.map(jobKey));
const tally = (j: JobRecord) => {
  const cell = ((((counts[j.set] ??= {})[j.variant] ??= {})[String(j.length)] ??= {})[String(j.depth)] ??= [0, 0]);
  cell[0] += j.correct ? 1 : 0;
  cell[1] += 1;
};
jobs.forEach(tally);
const started = Date.now();
const command = `node --import tsx bench/quality/api-passkey.ts ${process.argv.slice(2).join(' ')}`;
const report = {
  command: previous ? [...[previous.command].flat(), command] : command,
  path: 'edge POST /v1/jobs → runner → S3 result via presigned URL',
  engine: 'runner default (onnx, CPU)',
  precision: 'fp32 (ONNX on CPU)',
  split: args.split,
  sets,
  lengths,
  depths,
  samplesPerCell: samples,
  variants,
  date: new Date().toISOString(),
  counts,
  jobs,
  wallSeconds: 0,
};
const save = () => {
  report.wallSeconds = Math.round((Date.now() - started) / 1000);
  mkdirSync(dirname(args.out!), { recursive: true });
  writeFileSync(args.out!, JSON.stringify(report, null, 1));
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Retries a call through transient failures (a restarting dev server, a timed-out poll): the job itself is safe in the queue. */
async function retrying<T>(what: string, call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (err) {
      if (attempt >= 8) throw err;
      console.log(`  ${what}: ${(err as Error).message}; retry ${attempt} in ${2 * attempt} s`);
      await sleep(2000 * attempt);
    }
  }
}

async function waitFor(view: JobView): Promise<JobView> {
  for (;;) {
    if (['succeeded', 'failed', 'cancelled'].includes(view.status)) return view;
    await sleep(1000);
    const id = view.id;
    view = await retrying(`GET job ${id}`, () => client.get(id));
  }
}

let done = 0;
const planned = lengths.length * samples * depths.length * sets.length * variants.length;
for (const length of lengths) {
  for (let sample = 0; sample < samples; sample++) {
    for (const depth of depths) {
      for (const [si, set] of sets.entries()) {
        const p = buildPasskeyPrompt(
          tokenizer,
          hays[set]!,
          length,
          depth,
          passkeyRng(3030 + si, length, depth, sample),
        );
        const prompt = tokenizer.decode(p.ids);
        for (const variant of variants) {
          if (doneKeys.has(jobKey({ set, variant, length, depth, sample }))) {
            done++;
            continue;
          }
          const t0 = Date.now();
          const body = {
            type: 'completion',
            model: 'deciserve-mamba',
            prompt,
            max_tokens: 8,
            temperature: 0,
            decimation: variant === 'mamba' ? 'off' : 'auto',
            protect: p.protect,
          };
          // an idempotency key per prompt, so a retried submit cannot run the same prompt twice
          const idem = `api-passkey-${args.split}-${set}-${variant}-${length}-${depth}-${sample}-${process.pid}`;
          const view = await waitFor(await retrying('submit', () => client.submit(body, idem)));
          let correct = false;
          let kept: ResultExtras['decimation'] | undefined;
          if (view.status === 'succeeded') {
            const result = await retrying('result', () => client.result<CompletionResult & ResultExtras>(view));
            correct = judgePasskey(result.choices[0]!.text, p.key);
            kept = result.decimation;
          }
          const record: JobRecord = {
            id: view.id,
            set,
            variant,
            length,
            depth,
            sample,
            status: view.status,
            correct,
            promptTokens: view.prompt_tokens,
            seconds: (Date.now() - t0) / 1000,
            kept: kept?.kept,
          };
          jobs.push(record);
          tally(record);
          save();
          done++;
          console.log(
            `[${done}/${planned}] L=${length} ${set} depth ${depth} ${variant}: ${view.status}` +
              ` ${correct ? 'correct' : 'wrong'} (${((Date.now() - t0) / 1000).toFixed(1)} s)`,
          );
        }
      }
    }
  }
}

function sum(variant: string, length: number, depth?: number): Cell {
  const c: Cell = [0, 0];
  for (const set of sets) {
    for (const [d, [k, n]] of Object.entries(counts[set]?.[variant]?.[String(length)] ?? {})) {
      if (depth === undefined || Number(d) === depth) [c[0], c[1]] = [c[0] + k, c[1] + n];
    }
  }
  return c;
}
const summary = lengths.map((length) => ({
  length,
  ...Object.fromEntries(
    variants.map((v) => {
      const [k, n] = sum(v, length);
      return [
        v,
        {
          correct: k,
          n,
          ci95: wilsonInterval(k, n),
          worstDepth: Math.min(
            ...depths.map((d) => {
              const [a, m] = sum(v, length, d);
              return m ? a / m : 1;
            }),
          ),
        },
      ];
    }),
  ),
}));
Object.assign(report, { summary });
save();
console.log(`| length | ${variants.join(' | ')} |\n|---|${variants.map(() => '---|').join('')}`);
for (const length of lengths)
  console.log(`| ${length} | ${variants.map((v) => formatAccuracy(...sum(v, length))).join(' | ')} |`);
console.log(`wrote ${args.out} (${report.wallSeconds} s wall clock)`);
