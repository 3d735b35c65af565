// How accuracy is added up, with answerers that are right in known proportions: the CLI's runPasskey tally, the
// passkey judge, and the suite job's judge + summary (runner/pass/suite.ts). Pure logic, so the answerers are fakes that
// read the key out of the prompt and answer it (or a wrong key) on a fixed schedule.
import { describe, expect, it } from 'vitest';
import { byteLevelTokenizerJson } from '../mamba/byte-tokenizer.ts';
import { sequentialEngine } from '../mamba/engine-base.ts';
import type { MambaConfig, MambaEngine, ModelState, PrefillOptions } from '../mamba/engine.ts';
import { haystackText, judgePasskey, runPasskey } from '../mamba/passkey.ts';
import { randomHaystack } from '../mamba/random-checkpoint.ts';
import { loadTokenizer } from '../mamba/tokenizer.ts';
import type { JobStats, PassItem, PassOutcome } from '../runner/pass/pass-types.ts';
import type { JobRequest, SuiteJobRequest } from '../protocol/job-request.ts';
import { judgeSample, runSuite, summarizeSuite, type SampleJob } from '../runner/pass/suite.ts';
import type { SampleResult } from '../protocol/suite-spec.ts';

const tokenizer = loadTokenizer(byteLevelTokenizerJson().json);
const { vocabSize } = byteLevelTokenizerJson();
const hay = tokenizer.encode(haystackText(randomHaystack(1, 600)));
const keyIn = (text: string): number => Number(/pass key is (\d+)/.exec(text)![1]);
/** The answer text for a prompt: its key, or a wrong key (off by one, so the judge has to compare every digit). */
const answerFor = (key: number, right: boolean): string => ` ${right ? key : key + 1}. Remember`;

/**
 * An engine that answers passkey prompts: it decodes the prompt, finds the key and emits the tokens of the answer
 * text, right or wrong as `right(decimated, call)` says (`call` counts prefills per mode from 0).
 */
function answeringEngine(right: (decimated: boolean, call: number) => boolean): MambaEngine {
  const queues = new WeakMap<ModelState, number[]>();
  const calls = { true: 0, false: 0 };
  const emit = (queue: number[]) => {
    const logits = new Float32Array(vocabSize);
    logits[queue.shift() ?? tokenizer.encode(' ')[0]!] = 10;
    const state: ModelState = [];
    queues.set(state, queue);
    return { logits, state };
  };
  return sequentialEngine({
    name: 'answering-fake',
    config: { vocabSize } as MambaConfig,
    async prefill(ids: ArrayLike<number>, options?: PrefillOptions) {
      const decimated = !!options?.decimation;
      const ok = right(decimated, calls[`${decimated}`]++);
      const { logits, state } = emit(tokenizer.encode(answerFor(keyIn(tokenizer.decode(ids)), ok)));
      return { positions: [ids.length - 1], logits: [logits], state, kept: [] };
    },
    async step(_token: number, state: ModelState) {
      return emit(queues.get(state)!);
    },
  });
}

describe('the passkey judge', () => {
  it('compares the first run of digits as a string: no leading zeros, signs or trailing digits accepted', () => {
    expect(judgePasskey(' 71432.', 71432)).toBe(true);
    expect(judgePasskey('71432', 71432)).toBe(true);
    expect(judgePasskey(' 071432.', 71432)).toBe(false); // parseInt/Number would accept it
    expect(judgePasskey(' 71432abc 5', 71432)).toBe(true);
    expect(judgePasskey(' 7143 2', 71432)).toBe(false);
    expect(judgePasskey(' 71433', 71432)).toBe(false);
    expect(judgePasskey(' key 71432 7', 71432)).toBe(true);
    expect(judgePasskey(' 1e5', 100000)).toBe(false); // Number('1e5') would
    expect(judgePasskey('', 71432)).toBe(false);
  });
});

describe('runPasskey tally', () => {
  it('counts exactly the right answers: Mamba right on every other prompt (2/4), DeciMamba on 3 of 4', async () => {
    const engine = answeringEngine((decimated, call) => (decimated ? call % 4 !== 3 : call % 2 === 0));
    const { cells, samples } = await runPasskey(engine, tokenizer, hay, {
      lengths: [120, 160],
      depths: [0.5],
      samples: 4,
      seed: 1,
      modes: ['mamba', 'decimamba'],
      decimation: { layers: [1], beta: 0.5, lBase: 16, minSeqLen: 4 },
    });
    expect(cells.map((c) => [c.length, c.mode, c.correct, c.total, c.accuracy])).toEqual([
      [120, 'mamba', 2, 4, 0.5],
      [120, 'decimamba', 3, 4, 0.75],
      [160, 'mamba', 2, 4, 0.5],
      [160, 'decimamba', 3, 4, 0.75],
    ]);
    for (const s of samples) expect(s.answer.startsWith(s.correct ? ` ${s.key}.` : ` ${s.key + 1}.`)).toBe(true);
  });

  it('an engine that is always right scores 1, one that is never right scores 0', async () => {
    const opts = {
      lengths: [120],
      depths: [0, 1],
      samples: 3,
      seed: 2,
      modes: ['mamba' as const],
      decimation: { layers: [1], beta: 0.5, lBase: 16, minSeqLen: 4 },
    };
    const all = await runPasskey(
      answeringEngine(() => true),
      tokenizer,
      hay,
      opts,
    );
    expect(all.cells.map((c) => [c.correct, c.accuracy])).toEqual([
      [3, 1],
      [3, 1],
    ]);
    const none = await runPasskey(
      answeringEngine(() => false),
      tokenizer,
      hay,
      opts,
    );
    expect(none.cells.map((c) => [c.correct, c.accuracy])).toEqual([
      [0, 0],
      [0, 0],
    ]);
    const empty = await runPasskey(
      answeringEngine(() => true),
      tokenizer,
      hay,
      { ...opts, samples: 0 },
    );
    expect(empty.cells.map((c) => [c.total, c.accuracy])).toEqual([
      [0, 0],
      [0, 0],
    ]);
  });
});

const sample = (over: Partial<SampleResult>): SampleResult => ({
  key: 'k',
  task: 'passkey',
  length: 128,
  sample: 0,
  variant: 'mamba',
  jobId: 'j/k',
  ok: true,
  latencyMs: 10,
  ...over,
});

describe('summarizeSuite', () => {
  it('passkey accuracy is right answers / answered samples per variant and length; failed samples are counted apart', () => {
    const samples = [
      ...[true, true, true, false].map((correct, i) =>
        sample({ variant: 'decimamba', length: 256, correct, latencyMs: 10 * (i + 1) }),
      ),
      ...[true, false, false, false].map((correct) => sample({ variant: 'mamba', length: 256, correct })),
      sample({ variant: 'mamba', length: 256, ok: false, error: 'engine_error: x', latencyMs: 999 }),
      ...[false, true].map((correct) => sample({ variant: 'mamba', length: 128, correct })),
    ];
    expect(summarizeSuite('passkey', samples)).toEqual({
      task: 'passkey',
      byLength: {
        decimamba: { '256': { value: 0.75, n: 4, failed: 0, meanLatencyMs: 25 } },
        mamba: {
          '256': { value: 0.25, n: 4, failed: 1, meanLatencyMs: 10 },
          '128': { value: 0.5, n: 2, failed: 0, meanLatencyMs: 10 },
        },
      },
    });
  });

  it('a group whose samples all failed reports 0 with n 0, not NaN', () => {
    const s = summarizeSuite('passkey', [sample({ ok: false, correct: true }), sample({ ok: false })]);
    expect(s.byLength.mamba!['128']).toEqual({ value: 0, n: 0, failed: 2, meanLatencyMs: 0 });
  });

  it('perplexity is exp(mean NLL) over the answered windows', () => {
    const s = summarizeSuite('perplexity', [
      sample({ task: 'perplexity', meanNll: 1 }),
      sample({ task: 'perplexity', meanNll: 3 }),
      sample({ task: 'perplexity', ok: false, meanNll: 100 }),
    ]);
    expect(s.byLength.mamba!['128']!.value).toBeCloseTo(Math.exp(2), 12);
    expect(s.byLength.mamba!['128']).toMatchObject({ n: 2, failed: 1 });
  });
});

describe('judgeSample', () => {
  const job = {
    key: 'k',
    length: 128,
    sample: 0,
    variant: 'mamba',
    passkey: 71432,
    body: {} as JobRequest,
  } satisfies SampleJob;
  it('judges the completion text and reports the smallest kept-token count', () => {
    const kept = [
      { layer: 3, tokens: 900 },
      { layer: 5, tokens: 400 },
    ];
    expect(
      judgeSample('passkey', job, { choices: [{ text: ' 71432.' }], deciserve: { decimation: { kept } } }),
    ).toEqual({ answer: ' 71432.', correct: true, keptTokens: 400 });
    expect(judgeSample('passkey', job, { choices: [{ text: ' 71431.' }] })).toEqual({
      answer: ' 71431.',
      correct: false,
      keptTokens: undefined,
    });
    expect(judgeSample('passkey', job, { choices: [] })).toMatchObject({ answer: '', correct: false });
    expect(
      judgeSample('passkey', job, { choices: [{ text: ' 1' }], deciserve: { decimation: { kept: [] } } }).keptTokens,
    ).toBeUndefined();
    expect(judgeSample('perplexity', job, { mean_nll: 2, perplexity: 7.4 })).toEqual({
      meanNll: 2,
      perplexity: 7.4,
      keptTokens: undefined,
    });
  });
});

describe('runSuite tally', () => {
  const stats = (promptTokens: number): JobStats => ({
    promptTokens,
    completionTokens: 8,
    scoredTokens: 0,
    keptTokens: promptTokens,
    decimated: false,
    prefillMs: 3,
    decodeMs: 2,
  });
  it('a runner right on 3 of 4 DeciMamba prompts and 1 of 4 Mamba prompts, with one failed sample, sums to 0.75 and 1/3', async () => {
    const calls = { mamba: 0, decimamba: 0 };
    const run = async (items: PassItem<JobRequest>[]): Promise<PassOutcome[]> =>
      items.map((it) => {
        const variant = it.request.decimation === 'on' ? 'decimamba' : 'mamba';
        const call = calls[variant]++;
        if (variant === 'mamba' && call === 3)
          return { id: it.id, ok: false, error: { message: 'boom', code: 'engine_error' }, retryable: true };
        const right = variant === 'decimamba' ? call !== 1 : call === 0;
        const text = answerFor(keyIn(it.request.prompt), right);
        return { id: it.id, ok: true, result: { choices: [{ text }] } as never, stats: stats(128) };
      });
    const request = {
      type: 'suite',
      model: 'tiny',
      priority: 5,
      suite: {
        task: 'passkey',
        lengths: [128],
        depths: [0.25, 0.75],
        samples: 2,
        seed: 4,
        variants: ['mamba', 'decimamba'],
      },
    } as SuiteJobRequest;
    const out = await runSuite(
      { id: 'job_s', request, createdAt: 0 },
      { tokenizer, engine: 'fake', haystack: () => hay, run },
    );
    const result = out.result as unknown as {
      summary: ReturnType<typeof summarizeSuite>;
      samples: SampleResult[];
      usage: { prompt_tokens: number };
    };
    expect(result.summary.byLength.decimamba!['128']).toMatchObject({ value: 0.75, n: 4, failed: 0 });
    expect(result.summary.byLength.mamba!['128']).toMatchObject({ value: 1 / 3, n: 3, failed: 1 });
    expect(result.samples.filter((s) => s.correct).length).toBe(4);
    expect(result.usage.prompt_tokens).toBe(7 * 128);
  });
});
