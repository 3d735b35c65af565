// A quality benchmark run as one runner job (`type: "suite"`): the passkey prompts and perplexity windows of
// mamba/passkey.ts and train/evaluate.py, each run as a completion or score sample (decimation off = Mamba, on =
// DeciMamba), judged and summarised. No Node APIs here: pass.ts, which the edge also imports, runs suites.
import { buildPasskeyPrompt, judgePasskey, passkeyRng, PASSKEY_ANSWER_TOKENS } from '../../mamba/passkey.ts';
import { createRng, mixSeed } from '../../mamba/rng.ts';
import type { DecimationConfig } from '../../mamba/engine.ts';
import type { TextTokenizer } from '../../mamba/tokenizer.ts';
import type { JobRequest, SuiteJobRequest } from '../../protocol/job-request.ts';
import type { JobStats, PassItem, PassOutcome } from './pass-types.ts';
import {
  SCORED_TOKENS,
  suitePromptCount,
  type SampleResult,
  type SuiteResult,
  type SuiteSpec,
  type SuiteSummary,
  type Task,
  type Variant,
} from '../../protocol/suite-spec.ts';

/** Samples per sub-pass: one CUDA batch each. */
export const SUB_PASS_JOBS = 64;

export interface SampleJob {
  key: string;
  length: number;
  depth?: number;
  sample: number;
  variant: Variant;
  /** The completion or score job this sample runs as. */
  body: JobRequest;
  /** passkey: the key to find. */
  passkey?: number;
}

const decimationFor = (v: Variant): 'on' | 'fixed' | 'off' =>
  v === 'decimamba' ? 'on' : v === 'decimamba-fixed' ? 'fixed' : 'off';

/** Jobs for a suite; the same (length, depth, sample) prompt goes to every variant. */
export function buildSuiteJobs(
  spec: SuiteSpec,
  tokenizer: TextTokenizer,
  haystackIds: number[],
  suiteId: string,
): SampleJob[] {
  const jobs: SampleJob[] = [];
  const meta = (o: Record<string, string | number | undefined>) =>
    Object.fromEntries(
      Object.entries({ suite: suiteId, task: spec.task, ...o })
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => [k, String(v)]),
    );
  const common = { model: spec.model, temperature: 0, top_p: 1, top_k: 0, priority: 5 };
  for (const length of spec.lengths) {
    if (spec.task === 'passkey') {
      for (const depth of spec.depths ?? []) {
        for (let i = 0; i < spec.samples; i++) {
          const p = buildPasskeyPrompt(tokenizer, haystackIds, length, depth, passkeyRng(spec.seed, length, depth, i));
          const prompt = tokenizer.decode(p.ids);
          for (const variant of spec.variants) {
            jobs.push({
              key: `passkey/${length}/${depth}/${i}/${variant}`,
              length,
              depth,
              sample: i,
              variant,
              passkey: p.key,
              body: {
                ...common,
                type: 'completion',
                prompt,
                max_tokens: PASSKEY_ANSWER_TOKENS,
                decimation: decimationFor(variant),
                protect: p.protect,
                metadata: meta({ length, depth, sample: i, variant }),
              },
            });
          }
        }
      }
    } else {
      const rng = createRng(mixSeed(spec.seed, length, 7));
      for (let i = 0; i < spec.samples; i++) {
        if (haystackIds.length <= length + 1)
          throw new Error(`perplexity: held-out text has ${haystackIds.length} tokens, need > ${length}`);
        const start = rng.int(haystackIds.length - length);
        const window = haystackIds.slice(start, start + length);
        const context = tokenizer.decode(window.slice(0, length - SCORED_TOKENS));
        const continuation = tokenizer.decode(window.slice(length - SCORED_TOKENS));
        for (const variant of spec.variants) {
          jobs.push({
            key: `perplexity/${length}/${i}/${variant}`,
            length,
            sample: i,
            variant,
            body: {
              ...common,
              type: 'score',
              prompt: context,
              continuation,
              max_tokens: 0,
              decimation: decimationFor(variant),
              protect: SCORED_TOKENS + 1,
              metadata: meta({ length, sample: i, variant }),
            },
          });
        }
      }
    }
  }
  return jobs;
}

interface CompletionLike {
  choices: Array<{ text: string }>;
  deciserve?: { decimation?: { config?: DecimationConfig | null; kept?: Array<{ layer: number; tokens: number }> } };
}
interface ScoreLike {
  mean_nll: number;
  perplexity: number;
  deciserve?: CompletionLike['deciserve'];
}

/** Turns a sample's result into a per-sample record. */
export function judgeSample(
  task: Task,
  job: SampleJob,
  result: unknown,
): Pick<SampleResult, 'answer' | 'correct' | 'meanNll' | 'perplexity' | 'keptTokens'> {
  const kept = (result as CompletionLike).deciserve?.decimation?.kept;
  const keptTokens = kept && kept.length > 0 ? Math.min(...kept.map((k) => k.tokens)) : undefined;
  if (task === 'passkey') {
    const answer = (result as CompletionLike).choices[0]?.text ?? '';
    return { answer, correct: judgePasskey(answer, job.passkey!), keptTokens };
  }
  const r = result as ScoreLike;
  return { meanNll: r.mean_nll, perplexity: r.perplexity, keptTokens };
}

export function summarizeSuite(task: Task, samples: SampleResult[]): SuiteSummary {
  const byLength: SuiteSummary['byLength'] = {};
  const groups = new Map<string, SampleResult[]>();
  for (const s of samples) {
    const key = `${s.variant}|${s.length}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(s);
  }
  for (const [k, group] of groups) {
    const [variant, length] = k.split('|') as [string, string];
    const ok = group.filter((s) => s.ok);
    const value =
      task === 'passkey'
        ? ok.filter((s) => s.correct).length / Math.max(ok.length, 1)
        : Math.exp(ok.reduce((a, s) => a + s.meanNll!, 0) / Math.max(ok.length, 1));
    const meanLatencyMs = ok.reduce((a, s) => a + s.latencyMs, 0) / Math.max(ok.length, 1);
    (byLength[variant] ??= {})[length] = {
      value,
      n: ok.length,
      failed: group.length - ok.length,
      meanLatencyMs: Math.round(meanLatencyMs),
    };
  }
  return { task, byLength };
}

export interface SuiteEnv {
  tokenizer: TextTokenizer;
  engine: string;
  /** The model's held-out text, tokenized (read once by the engine thread). */
  haystack(): number[];
  /** Runs completion/score items as one pass (pass.ts's path for ordinary jobs). */
  run(items: PassItem<JobRequest>[]): Promise<PassOutcome[]>;
  log?(fields: Record<string, unknown>, msg: string): void;
}

/**
 * Runs a suite job: per context length, its samples in sub-passes of at most SUB_PASS_JOBS (one batch each on the
 * CUDA engine). A failed sample is recorded in the samples; the suite itself fails only on a bad spec or model folder.
 */
export async function runSuite(
  item: PassItem<SuiteJobRequest>,
  env: SuiteEnv,
): Promise<Extract<PassOutcome, { ok: true }>> {
  const t0 = performance.now();
  const spec: SuiteSpec = { ...item.request.suite, model: item.request.model };
  const haystack = env.haystack();
  const total = suitePromptCount(spec);
  const samples: SampleResult[] = [];
  let decimation: DecimationConfig | null = null;
  const stats: JobStats = {
    promptTokens: 0,
    completionTokens: 0,
    scoredTokens: 0,
    keptTokens: 0,
    decimated: false,
    prefillMs: 0,
    decodeMs: 0,
  };
  for (const length of spec.lengths) {
    // One length at a time: only its prompts are held in memory (prompts are seeded per length, so this is the same set).
    const jobs = buildSuiteJobs({ ...spec, lengths: [length] }, env.tokenizer, haystack, item.id);
    for (let at = 0; at < jobs.length; at += SUB_PASS_JOBS) {
      const chunk = jobs.slice(at, at + SUB_PASS_JOBS);
      const items = chunk.map((j) => ({ id: `${item.id}/${j.key}`, request: j.body, createdAt: item.createdAt }));
      const t1 = performance.now();
      const outcomes = await env.run(items).catch((err: unknown): PassOutcome[] =>
        items.map((it) => ({
          id: it.id,
          ok: false,
          error: { message: String((err as Error)?.message ?? err), code: 'engine_error' },
          retryable: true,
        })),
      );
      const ms = performance.now() - t1;
      outcomes.forEach((o, i) => {
        const j = chunk[i]!;
        const base = {
          key: j.key,
          task: spec.task,
          length,
          depth: j.depth,
          sample: j.sample,
          variant: j.variant,
          jobId: items[i]!.id,
        };
        if (!o.ok) {
          samples.push({ ...base, ok: false, error: `${o.error.code}: ${o.error.message}`, latencyMs: Math.round(ms) });
          return;
        }
        for (const k of [
          'promptTokens',
          'completionTokens',
          'scoredTokens',
          'keptTokens',
          'prefillMs',
          'decodeMs',
        ] as const)
          stats[k] += o.stats[k];
        stats.decimated ||= o.stats.decimated;
        decimation ??= (o.result as CompletionLike).deciserve?.decimation?.config ?? null;
        const latencyMs = Math.round(o.stats.prefillMs + o.stats.decodeMs);
        samples.push({
          ...base,
          ok: true,
          promptTokens: o.stats.promptTokens,
          latencyMs,
          ...judgeSample(spec.task, j, o.result),
        });
      });
      const promptTokens = outcomes.reduce((a, o) => a + (o.ok ? o.stats.promptTokens : 0), 0);
      env.log?.(
        {
          suite: item.id,
          task: spec.task,
          length,
          jobs: chunk.length,
          failed: outcomes.filter((o) => !o.ok).length,
          done: samples.length,
          total,
          ms: Math.round(ms),
          promptTokens,
        },
        'suite sub-pass done',
      );
    }
  }
  const result: SuiteResult = {
    id: item.id,
    object: 'bench_suite',
    created: Math.floor(item.createdAt / 1000),
    model: item.request.model,
    spec,
    summary: summarizeSuite(spec.task, samples),
    samples,
    usage: { prompt_tokens: stats.promptTokens },
    deciserve: {
      engine: env.engine,
      wall_seconds: Math.round(performance.now() - t0) / 1000,
      decimation: { config: decimation },
    },
  };
  return { id: item.id, ok: true, result, stats };
}
