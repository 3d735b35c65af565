// runner/pass/suite.ts without a runner: prompt counts and token cost, the sample jobs a suite expands to (passkey and
// perplexity), and runSuite's bookkeeping (sub-passes of 64, failures, stats, decimation config, logs).
import { describe, expect, it } from 'vitest';
import { byteLevelTokenizerJson } from '../../mamba/byte-tokenizer.ts';
import { haystackText, PASSKEY_ANSWER_TOKENS } from '../../mamba/passkey.ts';
import { randomHaystack } from '../../mamba/random-checkpoint.ts';
import { loadTokenizer } from '../../mamba/tokenizer.ts';
import type { JobRequest, SuiteJobRequest } from '../../protocol/job-request.ts';
import type { JobStats, PassItem, PassOutcome } from '../../runner/pass/pass-types.ts';
import { buildSuiteJobs, runSuite, SUB_PASS_JOBS } from '../../runner/pass/suite.ts';
import {
  SCORED_TOKENS,
  suitePromptCount,
  suitePromptTokens,
  type SuiteResult,
  type SuiteSpec,
} from '../../protocol/suite-spec.ts';

const tokenizer = loadTokenizer(byteLevelTokenizerJson().json);
const hay = tokenizer.encode(haystackText(randomHaystack(2, 900)));
const passkey: SuiteSpec = {
  task: 'passkey',
  lengths: [128, 256],
  depths: [0, 0.5, 1],
  samples: 2,
  seed: 3,
  variants: ['mamba', 'decimamba'],
  model: 'tiny',
};
const perplexity: SuiteSpec = {
  task: 'perplexity',
  lengths: [200, 300],
  samples: 3,
  seed: 1,
  variants: ['decimamba'],
  model: 'tiny',
};

describe('suite size', () => {
  it('counts lengths × depths × samples × variants prompts, and their prompt tokens', () => {
    expect(suitePromptCount(passkey)).toBe(2 * 3 * 2 * 2);
    expect(suitePromptTokens(passkey)).toBe((128 + 256) * 3 * 2 * 2);
    expect(suitePromptCount(perplexity)).toBe(2 * 3);
    expect(suitePromptTokens(perplexity)).toBe((200 + 300) * 3);
    expect(suitePromptCount({ ...passkey, depths: undefined })).toBe(0);
  });
});

describe('buildSuiteJobs', () => {
  it('passkey: one greedy completion per (length, depth, sample), the same prompt for each variant', () => {
    const jobs = buildSuiteJobs(passkey, tokenizer, hay, 'job_s');
    expect(jobs).toHaveLength(24);
    expect(jobs.slice(0, 2).map((j) => j.key)).toEqual(['passkey/128/0/0/mamba', 'passkey/128/0/0/decimamba']);
    const [mamba, deci] = jobs as [(typeof jobs)[0], (typeof jobs)[0]];
    expect(mamba.body).toEqual({
      model: 'tiny',
      temperature: 0,
      top_p: 1,
      top_k: 0,
      priority: 5,
      type: 'completion',
      prompt: mamba.body.prompt,
      max_tokens: PASSKEY_ANSWER_TOKENS,
      decimation: 'off',
      protect: mamba.body.protect,
      metadata: { suite: 'job_s', task: 'passkey', length: '128', depth: '0', sample: '0', variant: 'mamba' },
    });
    expect(deci.body).toMatchObject({
      decimation: 'on',
      prompt: mamba.body.prompt,
      metadata: { variant: 'decimamba' },
    });
    expect(tokenizer.encode(mamba.body.prompt)).toHaveLength(128);
    expect(mamba.body.prompt).toContain(`The pass key is ${mamba.passkey}.`);
    expect(mamba.body.protect).toBe(tokenizer.encode(' What is the pass key? The pass key is').length);
    expect(jobs.filter((j) => j.length === 256 && j.depth === 1 && j.sample === 1).map((j) => j.variant)).toEqual([
      'mamba',
      'decimamba',
    ]);
    expect(new Set(jobs.filter((j) => j.variant === 'mamba').map((j) => j.passkey)).size).toBe(12);
  });

  it('perplexity: a held-out window per sample, its last 100 tokens scored given the rest', () => {
    const jobs = buildSuiteJobs(perplexity, tokenizer, hay, 'job_p');
    expect(jobs.map((j) => j.key)).toEqual([
      'perplexity/200/0/decimamba',
      'perplexity/200/1/decimamba',
      'perplexity/200/2/decimamba',
      'perplexity/300/0/decimamba',
      'perplexity/300/1/decimamba',
      'perplexity/300/2/decimamba',
    ]);
    const text = tokenizer.decode(hay);
    for (const j of jobs) {
      const body = j.body as JobRequest & { continuation: string };
      expect(body).toMatchObject({
        type: 'score',
        max_tokens: 0,
        decimation: 'on',
        protect: SCORED_TOKENS + 1,
        temperature: 0,
        metadata: {
          suite: 'job_p',
          task: 'perplexity',
          length: String(j.length),
          sample: String(j.sample),
          variant: 'decimamba',
        },
      });
      expect(body.metadata).not.toHaveProperty('depth');
      expect(text).toContain(body.prompt + body.continuation);
      expect(tokenizer.encode(body.continuation).length).toBeLessThanOrEqual(SCORED_TOKENS + 1);
      expect(tokenizer.encode(body.prompt + body.continuation).length).toBeGreaterThan(j.length - 10);
    }
    expect(new Set(jobs.map((j) => j.body.prompt)).size).toBe(6);
    expect(buildSuiteJobs(perplexity, tokenizer, hay, 'job_p')).toEqual(jobs); // seeded
    expect(() => buildSuiteJobs({ ...perplexity, lengths: [hay.length - 1] }, tokenizer, hay, 'x')).toThrow(
      `held-out text has ${hay.length} tokens, need > ${hay.length - 1}`,
    );
  });
});

describe('runSuite', () => {
  const stats = (over: Partial<JobStats> = {}): JobStats => ({
    promptTokens: 100,
    completionTokens: 8,
    scoredTokens: 0,
    keptTokens: 50,
    decimated: true,
    prefillMs: 4,
    decodeMs: 1,
    ...over,
  });
  const request = (suite: Omit<SuiteSpec, 'model'>) =>
    ({ type: 'suite', model: 'tiny', priority: 5, suite }) as SuiteJobRequest;
  const config = { layers: [1], beta: 0.5, lBase: 16, minSeqLen: 4 };

  it('runs sub-passes of at most 64 samples, sums their stats and keeps the first decimation config', async () => {
    const spec = {
      task: 'passkey' as const,
      lengths: [128],
      depths: [0, 0.5, 1],
      samples: 11,
      seed: 0,
      variants: ['mamba' as const, 'decimamba' as const],
    };
    const batches: number[] = [];
    const logs: Array<Record<string, unknown>> = [];
    const run = async (items: PassItem<JobRequest>[]): Promise<PassOutcome[]> => {
      batches.push(items.length);
      return items.map((it, i) => ({
        id: it.id,
        ok: true,
        stats: stats({ decimated: it.request.decimation === 'on' }),
        result: {
          choices: [{ text: ' 1' }],
          deciserve: { decimation: { config: i === 0 ? null : config, kept: [{ layer: 1, tokens: 40 }] } },
        } as never,
      }));
    };
    const out = await runSuite(
      { id: 'job_r', request: request(spec), createdAt: 1_700_000_123_456 },
      { tokenizer, engine: 'fake', haystack: () => hay, run, log: (f) => logs.push(f) },
    );
    const result = out.result as unknown as SuiteResult;
    expect(batches).toEqual([SUB_PASS_JOBS, 2]);
    expect(result).toMatchObject({
      id: 'job_r',
      object: 'bench_suite',
      created: 1_700_000_123,
      model: 'tiny',
      spec: { ...spec, model: 'tiny' },
      usage: { prompt_tokens: 6600 },
    });
    expect(result.deciserve).toMatchObject({ engine: 'fake', decimation: { config } });
    expect(result.deciserve.wall_seconds).toBeGreaterThanOrEqual(0);
    expect(out.stats).toEqual({
      promptTokens: 6600,
      completionTokens: 528,
      scoredTokens: 0,
      keptTokens: 3300,
      decimated: true,
      prefillMs: 264,
      decodeMs: 66,
    });
    expect(result.samples[0]).toMatchObject({
      key: 'passkey/128/0/0/mamba',
      jobId: 'job_r/passkey/128/0/0/mamba',
      ok: true,
      promptTokens: 100,
      latencyMs: 5,
      keptTokens: 40,
      correct: false,
      task: 'passkey',
      length: 128,
      depth: 0,
      sample: 0,
      variant: 'mamba',
    });
    expect(logs.map((l) => [l.jobs, l.done, l.total, l.failed, l.promptTokens, l.length, l.suite, l.task])).toEqual([
      [64, 64, 66, 0, 6400, 128, 'job_r', 'passkey'],
      [2, 66, 66, 0, 200, 128, 'job_r', 'passkey'],
    ]);
  });

  it('a sub-pass that throws fails its samples (not the suite); failed outcomes are recorded apart from the stats', async () => {
    const spec = { task: 'perplexity' as const, lengths: [200], samples: 2, seed: 0, variants: ['mamba' as const] };
    let call = 0;
    const run = async (items: PassItem<JobRequest>[]): Promise<PassOutcome[]> => {
      if (call++ === 0) throw new Error('engine died');
      return items.map((it) => ({
        id: it.id,
        ok: false,
        error: { message: 'bad', code: 'invalid_job' },
        retryable: false,
      }));
    };
    const env = { tokenizer, engine: 'fake', haystack: () => hay, run };
    const first = (await runSuite({ id: 'job_f', request: request(spec), createdAt: 0 }, env))
      .result as unknown as SuiteResult;
    expect(first.samples.map((s) => [s.ok, s.error])).toEqual([
      [false, 'engine_error: engine died'],
      [false, 'engine_error: engine died'],
    ]);
    expect(first.summary.byLength.mamba!['200']).toMatchObject({ n: 0, failed: 2 });
    expect(first.deciserve.decimation.config).toBeNull();
    const second = await runSuite({ id: 'job_f', request: request(spec), createdAt: 0 }, env);
    expect((second.result as unknown as SuiteResult).samples.map((s) => s.error)).toEqual([
      'invalid_job: bad',
      'invalid_job: bad',
    ]);
    expect(second.stats).toMatchObject({ promptTokens: 0, decimated: false });
  });
});
