// Passkey retrieval through the whole public path: POST /v1/jobs at the edge → runner (queue, engine) → result in S3,
// read back through the job's presigned URL. Prompts come from the held-out haystack sets (bench/quality/haystacks,
// the test split unless told), built as mamba/passkey.ts builds them and sent as text, as a user would send them.
// Samples interleave the variants so a slow machine or a stop part-way still leaves a fair comparison.
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadFolderTokenizer } from '../../mamba/checkpoint.ts';
import { buildPasskeyPrompt, encodeCorpus, haystackText, judgePasskey, passkeyRng } from '../../mamba/passkey.ts';
import { formatAccuracy, wilsonInterval } from '../../mamba/stats.ts';
import type { CompletionResult, ResultExtras } from '../../protocol/results.ts';
import { JobsClient, type JobView } from './jobs-client.ts';

const { values: args } = parseArgs({
  options: {
    'edge-url': { type: 'string', default: 'http://127.0.0.1:8787' },
    'api-key': { type: 'string' },
    model: { type: 'string', default: 'models/deciserve-mamba' },
    haystacks: { type: 'string', default: 'bench/quality/haystacks' },
    split: { type: 'string', default: 'test' },
    sets: { type: 'string', default: 'jargon,gcide,fortunes' },
    lengths: { type: 'string', default: '16000,64000' },
    depths: { type: 'string', default: '0,0.25,0.5,0.75,1' },
    samples: { type: 'string', default: '2' }, // prompts per set × depth cell and length
    variants: { type: 'string', default: 'decimamba,mamba' },
    out: { type: 'string', default: 'bench/results/api-passkey-cpu.json' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  console.log('usage: node --import tsx bench/quality/api-passkey.ts [--edge-url URL] [--api-key KEY] [--lengths 16000,64000]\n' +
    '  [--samples N per set×depth] [--variants decimamba,mamba] [--split test|val] [--sets a,b] [--out FILE]\n' +
    'Needs a running stack (npm run stack). The key defaults to .data/stack/api-key. decimamba = decimation "auto",\n' +
    'mamba = "off". Writes counts per set/variant/length/depth and a table with Wilson 95% intervals.');
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
const hays = Object.fromEntries(sets.map((s) => [s, encodeCorpus(tokenizer, haystackText(
  readFileSync(join(args.haystacks!, `${s}-${args.split}.txt`), 'utf8')))]));

type Cell = [number, number];
const counts: Record<string, Record<string, Record<string, Record<string, Cell>>>> = {};
const jobs: Array<Record<string, unknown>> = [];
const started = Date.now();
const report = {
  command: `node --import tsx bench/quality/api-passkey.ts ${process.argv.slice(2).join(' ')}`,
  path: 'edge POST /v1/jobs → runner → S3 result via presigned URL', engine: 'runner default (onnx, CPU)',
  precision: 'fp32 (ONNX on CPU)', split: args.split, sets, lengths, depths, samplesPerCell: samples, variants,
  date: new Date().toISOString(), counts, jobs, wallSeconds: 0,
};
const save = () => {
  report.wallSeconds = Math.round((Date.now() - started) / 1000);
  mkdirSync(dirname(args.out!), { recursive: true });
  writeFileSync(args.out!, JSON.stringify(report, null, 1));
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(view: JobView): Promise<JobView> {
  for (;;) {
    if (['succeeded', 'failed', 'cancelled'].includes(view.status)) return view;
    await sleep(1000);
    view = await client.get(view.id);
  }
}

let done = 0;
const planned = lengths.length * samples * depths.length * sets.length * variants.length;
for (const length of lengths) {
  for (let sample = 0; sample < samples; sample++) {
    for (const depth of depths) {
      for (const [si, set] of sets.entries()) {
        const p = buildPasskeyPrompt(tokenizer, hays[set]!, length, depth, passkeyRng(3030 + si, length, depth, sample));
        const prompt = tokenizer.decode(p.ids);
        for (const variant of variants) {
          const t0 = Date.now();
          const body = { type: 'completion', model: 'deciserve-mamba', prompt, max_tokens: 8, temperature: 0,
            decimation: variant === 'mamba' ? 'off' : 'auto', protect: p.protect };
          const view = await waitFor(await client.submit(body));
          let correct = false;
          let kept: ResultExtras['decimation'] | undefined;
          if (view.status === 'succeeded') {
            const result = await client.result<CompletionResult & ResultExtras>(view);
            correct = judgePasskey(result.choices[0]!.text, p.key);
            kept = result.decimation;
          }
          const cell = (((counts[set] ??= {})[variant] ??= {})[String(length)] ??= {})[String(depth)] ??= [0, 0];
          cell[0] += correct ? 1 : 0;
          cell[1] += 1;
          jobs.push({ id: view.id, set, variant, length, depth, sample, status: view.status, correct,
            promptTokens: view.prompt_tokens, seconds: (Date.now() - t0) / 1000, kept: kept?.kept });
          save();
          done++;
          console.log(`[${done}/${planned}] L=${length} ${set} depth ${depth} ${variant}: ${view.status}` +
            ` ${correct ? 'correct' : 'wrong'} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
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
const summary = lengths.map((length) => ({ length, ...Object.fromEntries(variants.map((v) => {
  const [k, n] = sum(v, length);
  return [v, { correct: k, n, ci95: wilsonInterval(k, n), worstDepth: Math.min(...depths.map((d) => { const [a, m] = sum(v, length, d); return m ? a / m : 1; })) }];
})) }));
Object.assign(report, { summary });
save();
console.log(`| length | ${variants.join(' | ')} |\n|---|${variants.map(() => '---|').join('')}`);
for (const length of lengths) console.log(`| ${length} | ${variants.map((v) => formatAccuracy(...sum(v, length))).join(' | ')} |`);
console.log(`wrote ${args.out} (${report.wallSeconds} s wall clock)`);
