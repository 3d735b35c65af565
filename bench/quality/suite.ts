// A quality benchmark as a set of jobs: the passkey prompts and perplexity windows of mamba/passkey.ts and
// train/evaluate.py, each sent as one completion or score job (decimation off = Mamba, on = DeciMamba).
import { buildPasskeyPrompt, judgePasskey, passkeyRng, PASSKEY_ANSWER_TOKENS } from '../../mamba/passkey.ts';
import { createRng, mixSeed } from '../../mamba/rng.ts';
import type { TextTokenizer } from '../../mamba/tokenizer.ts';
import { decimationFor, type Variant } from '../scenarios/scenario.ts';

export type Task = 'passkey' | 'perplexity';
export const SCORED_TOKENS = 100;

export interface SuiteSpec {
  task: Task;
  lengths: number[];
  depths: number[];
  samples: number;
  seed: number;
  variants: Variant[];
  model: string;
}

export interface SampleJob {
  key: string;
  length: number;
  depth?: number;
  sample: number;
  variant: Variant;
  body: Record<string, unknown>;
  /** passkey: the key to find. */
  passkey?: number;
}

export interface SampleResult {
  key: string;
  task: Task;
  length: number;
  depth?: number;
  sample: number;
  variant: Variant;
  jobId: string;
  promptTokens?: number;
  ok: boolean;
  error?: string;
  answer?: string;
  correct?: boolean;
  meanNll?: number;
  perplexity?: number;
  keptTokens?: number;
  latencyMs: number;
}

/** Jobs for a suite; the same (length, depth, sample) prompt goes to every variant. */
export function buildSuiteJobs(spec: SuiteSpec, tokenizer: TextTokenizer, haystackIds: number[], suiteId: string): SampleJob[] {
  const jobs: SampleJob[] = [];
  const meta = (o: Record<string, string | number | undefined>) => Object.fromEntries(Object.entries({ suite: suiteId, task: spec.task, ...o }).filter(([, v]) => v !== undefined).map(([k, v]) => [k, String(v)]));
  for (const length of spec.lengths) {
    if (spec.task === 'passkey') {
      for (const depth of spec.depths) {
        for (let i = 0; i < spec.samples; i++) {
          const p = buildPasskeyPrompt(tokenizer, haystackIds, length, depth, passkeyRng(spec.seed, length, depth, i));
          const prompt = tokenizer.decode(p.ids);
          for (const variant of spec.variants) {
            jobs.push({
              key: `passkey/${length}/${depth}/${i}/${variant}`, length, depth, sample: i, variant, passkey: p.key,
              body: {
                type: 'completion', model: spec.model, prompt, max_tokens: PASSKEY_ANSWER_TOKENS, temperature: 0,
                decimation: decimationFor(variant), protect: p.protect, metadata: meta({ length, depth, sample: i, variant }),
              },
            });
          }
        }
      }
    } else {
      const rng = createRng(mixSeed(spec.seed, length, 7));
      for (let i = 0; i < spec.samples; i++) {
        if (haystackIds.length <= length + 1) throw new Error(`perplexity: held-out text has ${haystackIds.length} tokens, need > ${length}`);
        const start = rng.int(haystackIds.length - length);
        const window = haystackIds.slice(start, start + length);
        const context = tokenizer.decode(window.slice(0, length - SCORED_TOKENS));
        const continuation = tokenizer.decode(window.slice(length - SCORED_TOKENS));
        for (const variant of spec.variants) {
          jobs.push({
            key: `perplexity/${length}/${i}/${variant}`, length, sample: i, variant,
            body: {
              type: 'score', model: spec.model, prompt: context, continuation, decimation: decimationFor(variant),
              protect: SCORED_TOKENS + 1, metadata: meta({ length, sample: i, variant }),
            },
          });
        }
      }
    }
  }
  return jobs;
}

interface CompletionResult {
  choices: Array<{ text: string }>;
  deciserve?: { decimation?: { kept?: Array<{ layer: number; tokens: number }> } };
}
interface ScoreResult {
  mean_nll: number;
  perplexity: number;
  deciserve?: CompletionResult['deciserve'];
}

/** Turns a job's stored result into a per-sample record. */
export function judgeSample(task: Task, job: SampleJob, result: unknown): Pick<SampleResult, 'answer' | 'correct' | 'meanNll' | 'perplexity' | 'keptTokens'> {
  const kept = (result as CompletionResult).deciserve?.decimation?.kept;
  const keptTokens = kept && kept.length > 0 ? Math.min(...kept.map((k) => k.tokens)) : undefined;
  if (task === 'passkey') {
    const answer = (result as CompletionResult).choices[0]?.text ?? '';
    return { answer, correct: judgePasskey(answer, job.passkey!), keptTokens };
  }
  const r = result as ScoreResult;
  return { meanNll: r.mean_nll, perplexity: r.perplexity, keptTokens };
}

export interface SuiteSummary {
  task: Task;
  /** variant → length → accuracy (passkey) or perplexity = exp(mean NLL over windows), as train/evaluate.py. */
  byLength: Record<string, Record<string, { value: number; n: number; failed: number; meanLatencyMs: number }>>;
}

export function summarizeSuite(task: Task, samples: SampleResult[]): SuiteSummary {
  const byLength: SuiteSummary['byLength'] = {};
  const groups = new Map<string, SampleResult[]>();
  for (const s of samples) groups.set(`${s.variant}|${s.length}`, [...(groups.get(`${s.variant}|${s.length}`) ?? []), s]);
  for (const [k, group] of groups) {
    const [variant, length] = k.split('|') as [string, string];
    const ok = group.filter((s) => s.ok);
    const value = task === 'passkey'
      ? ok.filter((s) => s.correct).length / Math.max(ok.length, 1)
      : Math.exp(ok.reduce((a, s) => a + s.meanNll!, 0) / Math.max(ok.length, 1));
    const meanLatencyMs = ok.reduce((a, s) => a + s.latencyMs, 0) / Math.max(ok.length, 1);
    (byLength[variant] ??= {})[length] = { value, n: ok.length, failed: group.length - ok.length, meanLatencyMs: Math.round(meanLatencyMs) };
  }
  return { task, byLength };
}
