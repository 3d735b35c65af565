// protocol/job-request.ts at its boundaries: every limit accepted at its value and refused one step past it, for
// completion/score jobs and suites, with the errors' paths; stop strings, auto decimation at the training length,
// and the job-id seed against an independent FNV-1a.
import { describe, expect, it } from 'vitest';
import {
  jobRequestSchema,
  resolveDecimation,
  runnerJobRequestSchema,
  seedFromJobId,
  stopStrings,
  type JobRequest,
} from '../../protocol/job-request.ts';

const limits = { maxNewTokens: 64, maxPromptChars: 1000 };
const jobs = jobRequestSchema(limits);
const runner = runnerJobRequestSchema(limits);
const base = { type: 'completion', model: 'm', prompt: 'hi' };
const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
const url = (n: number) => `https://h.test/${'a'.repeat(n - 'https://h.test/'.length)}`;

describe('completion and score jobs', () => {
  const accepted: Record<string, unknown>[] = [
    { max_tokens: 0 },
    { max_tokens: 64 },
    { temperature: 0 },
    { temperature: 2 },
    { top_p: 1 },
    { top_p: 1e-9 },
    { top_k: 0 },
    { top_k: 100_000 },
    { seed: 0 },
    { seed: 0xffffffff },
    { stop: 'a'.repeat(256) },
    { stop: ['a', 'b', 'c', 'd'] },
    { stop: ['a'.repeat(256)] },
    { protect: 1 },
    { protect: 10_000_000 },
    { priority: 1 },
    { priority: 10 },
    { metadata: keys(16) },
    { metadata: { ['k'.repeat(64)]: 'v'.repeat(512) } },
    { model: 'm'.repeat(256) },
    { webhook: { url: 'http://h.test/x' } },
    { webhook: { url: url(2048) } },
    { prompt: 'x'.repeat(1000) },
    {
      decimation: 'on',
      decimation_params: { layers: Array.from({ length: 64 }, (_, i) => i), beta: 1, l_base: 1, min_seq_len: 0 },
    },
    { decimation_params: { layers: [1024], l_base: 100_000_000, min_seq_len: 100_000_000, beta: 1e-9 } },
    { type: 'score', continuation: 'x' },
    { type: 'score' },
    { decimation: 'off' },
    { decimation: 'auto' },
  ];
  const refused: Array<[Record<string, unknown>, string]> = [
    [{ max_tokens: -1 }, 'max_tokens'],
    [{ max_tokens: 65 }, 'max_tokens'],
    [{ max_tokens: 1.5 }, 'max_tokens'],
    [{ temperature: -0.01 }, 'temperature'],
    [{ temperature: 2.01 }, 'temperature'],
    [{ top_p: 0 }, 'top_p'],
    [{ top_p: 1.01 }, 'top_p'],
    [{ top_k: -1 }, 'top_k'],
    [{ top_k: 100_001 }, 'top_k'],
    [{ seed: -1 }, 'seed'],
    [{ seed: 2 ** 32 }, 'seed'],
    [{ stop: '' }, 'stop'],
    [{ stop: 'a'.repeat(257) }, 'stop'],
    [{ stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop'],
    [{ stop: [''] }, 'stop'],
    [{ stop: ['a'.repeat(257)] }, 'stop'],
    [{ protect: 0 }, 'protect'],
    [{ protect: 10_000_001 }, 'protect'],
    [{ priority: 0 }, 'priority'],
    [{ priority: 11 }, 'priority'],
    [{ metadata: keys(17) }, 'metadata'],
    [{ metadata: { '': 'v' } }, 'metadata'],
    [{ metadata: { ['k'.repeat(65)]: 'v' } }, 'metadata'],
    [{ metadata: { k: 'v'.repeat(513) } }, 'metadata'],
    [{ model: '' }, 'model'],
    [{ model: 'm'.repeat(257) }, 'model'],
    [{ prompt: '' }, 'prompt'],
    [{ prompt: 'x'.repeat(1001) }, 'prompt'],
    [{ webhook: { url: 'ftp://h.test/x' } }, 'webhook'],
    [{ webhook: { url: 'httpsx://h.test/x' } }, 'webhook'],
    [{ webhook: { url: 'xhttp://h.test/x' } }, 'webhook'],
    [{ webhook: { url: url(2049) } }, 'webhook'],
    [{ webhook: { url: 'https://h.test', secret: 'x' } }, 'webhook'],
    [{ webhook: {} }, 'webhook'],
    [{ decimation_params: { layers: [] } }, 'decimation_params'],
    [{ decimation_params: { layers: Array.from({ length: 65 }, (_, i) => i) } }, 'decimation_params'],
    [{ decimation_params: { layers: [-1] } }, 'decimation_params'],
    [{ decimation_params: { layers: [1025] } }, 'decimation_params'],
    [{ decimation_params: { beta: 0 } }, 'decimation_params'],
    [{ decimation_params: { beta: 1.01 } }, 'decimation_params'],
    [{ decimation_params: { l_base: 0 } }, 'decimation_params'],
    [{ decimation_params: { l_base: 100_000_001 } }, 'decimation_params'],
    [{ decimation_params: { min_seq_len: -1 } }, 'decimation_params'],
    [{ decimation_params: { min_seq_len: 100_000_001 } }, 'decimation_params'],
    [{ decimation_params: { k: 1 } }, 'decimation_params'],
    [{ decimation: 'maybe' }, 'decimation'],
    [{ type: 'suite' }, 'type'],
    [{ type: 'chat' }, 'type'],
    [{ type: 'score', continuation: '' }, 'continuation'],
    [{ type: 'score', continuation: 'x'.repeat(1001) }, 'continuation'],
  ];
  it('accepts every limit at its value', () => {
    for (const over of accepted)
      expect(jobs.safeParse({ ...base, ...over }).error?.issues, JSON.stringify(over).slice(0, 100)).toBeUndefined();
  });
  it('refuses one step past each, naming the field', () => {
    for (const [over, path] of refused) {
      const r = jobs.safeParse({ ...base, ...over });
      expect(r.success, JSON.stringify(over).slice(0, 100)).toBe(false);
      expect(r.error!.issues[0]!.path[0], JSON.stringify(over).slice(0, 100)).toBe(path);
    }
  });
  it('a continuation belongs to score jobs only', () => {
    const r = jobs.safeParse({ ...base, continuation: 'x' });
    expect(r.error!.issues).toEqual([
      expect.objectContaining({
        code: 'custom',
        path: ['continuation'],
        message: 'continuation is only for score jobs',
      }),
    ]);
  });
  it('fills the documented defaults', () => {
    expect(jobs.parse(base)).toEqual({
      ...base,
      max_tokens: 16,
      temperature: 0,
      top_p: 1,
      top_k: 0,
      decimation: 'auto',
      priority: 5,
    });
  });
});

describe('suite jobs', () => {
  const suite = (s: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
    type: 'suite',
    model: 'm',
    suite: { task: 'passkey', lengths: [128], depths: [0.5], samples: 1, ...s },
    ...extra,
  });
  const issue = (job: unknown) => runner.safeParse(job).error?.issues[0];
  it('accepts every limit at its value and fills seed, variants and priority', () => {
    expect(runner.parse(suite({}))).toEqual({
      type: 'suite',
      model: 'm',
      priority: 5,
      suite: { task: 'passkey', lengths: [128], depths: [0.5], samples: 1, seed: 0, variants: ['mamba', 'decimamba'] },
    });
    for (const s of [
      { lengths: [100_000_000] },
      { lengths: Array.from({ length: 64 }, (_, i) => 128 + i), variants: ['mamba'] },
      { depths: [0, 1] },
      { depths: Array.from({ length: 64 }, (_, i) => i / 64), variants: ['mamba'] },
      { samples: 5000, variants: ['mamba'] },
      { samples: 2500 },
      { seed: 0xffffffff },
      { variants: ['decimamba'] },
      { task: 'perplexity', depths: undefined },
    ])
      expect(issue(suite(s)), JSON.stringify(s).slice(0, 80)).toBeUndefined();
    expect(issue(suite({}, { priority: 10, metadata: keys(16), webhook: { url: 'http://h.test/' } }))).toBeUndefined();
  });
  it('refuses one step past each, with the path and the reason', () => {
    const cases: Array<[Record<string, unknown>, string, RegExp?]> = [
      [{ lengths: [127] }, 'suite.lengths.0'],
      [{ lengths: [100_000_001] }, 'suite.lengths.0'],
      [{ lengths: [] }, 'suite.lengths'],
      [{ lengths: Array.from({ length: 65 }, (_, i) => 128 + i) }, 'suite.lengths'],
      [{ lengths: [128, 128] }, 'suite.lengths', /^lengths must be distinct$/],
      [{ depths: [-0.01] }, 'suite.depths.0'],
      [{ depths: [1.01] }, 'suite.depths.0'],
      [{ depths: [] }, 'suite.depths'],
      [{ depths: Array.from({ length: 65 }, (_, i) => i / 65) }, 'suite.depths'],
      [{ depths: [0.5, 0.5] }, 'suite.depths', /^depths must be distinct$/],
      [{ depths: undefined }, 'suite.depths', /^passkey suites need depths/],
      [{ task: 'perplexity' }, 'suite.depths', /^depths is only for passkey suites$/],
      [{ samples: 0 }, 'suite.samples'],
      [{ samples: 5001 }, 'suite.samples'],
      [{ samples: 2501 }, 'suite.samples', /^the suite has 5002 prompts .*; at most 5000$/],
      [{ seed: -1 }, 'suite.seed'],
      [{ seed: 2 ** 32 }, 'suite.seed'],
      [{ variants: [] }, 'suite.variants'],
      [{ variants: ['mamba', 'mamba'] }, 'suite.variants', /^variants must be distinct$/],
      [{ variants: ['mamba', 'decimamba', 'mamba'] }, 'suite.variants'],
      [{ task: 'mmlu' }, 'suite.task'],
      [{ extra: 1 }, 'suite'],
    ];
    for (const [s, path, message] of cases) {
      const i = issue(suite(s));
      expect(i, JSON.stringify(s).slice(0, 80)).toBeDefined();
      expect(i!.path.join('.'), JSON.stringify(s).slice(0, 80)).toBe(path);
      if (message) expect(i!.message).toMatch(message);
    }
    expect(issue(suite({}, { priority: 11 }))!.path).toEqual(['priority']);
    expect(issue(suite({}, { model: '' }))!.path).toEqual(['model']);
    expect(issue(suite({}, { prompt: 'x' }))!.code).toBe('unrecognized_keys');
  });
  it('names the job types when the type is unknown, and leaves other errors as they are', () => {
    expect(issue({ ...base, type: 'suites' })!.message).toBe(
      'Invalid option: expected one of "completion"|"score"|"suite"',
    );
    expect(issue({ ...base, prompt: '' })!.message).not.toMatch(/expected one of/);
    expect(runner.parse({ ...base, type: 'score' })).toMatchObject({ type: 'score', max_tokens: 16 });
  });
});

describe('helpers', () => {
  it('stop strings: none, one or a list', () => {
    expect(stopStrings(jobs.parse(base))).toEqual([]);
    expect(stopStrings(jobs.parse({ ...base, stop: 'x' }))).toEqual(['x']);
    expect(stopStrings(jobs.parse({ ...base, stop: ['a', 'b'] }))).toEqual(['a', 'b']);
  });
  it('auto decimation turns on only above the training length', () => {
    const model = { nLayer: 4, trainLen: 2048, decimation: { layers: [2], beta: 0.5, lBase: 100, minSeqLen: 4 } };
    const r = jobs.parse(base) as JobRequest;
    expect(resolveDecimation(r, 2048, model)).toBeNull();
    expect(resolveDecimation(r, 2049, model)).toEqual(model.decimation);
    expect(
      resolveDecimation(
        { ...r, decimation: 'on', decimation_params: { layers: [1, 3], beta: 0.25, min_seq_len: 9 } },
        5,
        model,
      ),
    ).toEqual({ layers: [1, 3], beta: 0.25, lBase: 100, minSeqLen: 9 });
  });
  it('the seed is 32-bit FNV-1a of the job id', () => {
    const fnv = (s: string) =>
      [...Buffer.from(s, 'latin1')].reduce(
        (h, b) => Number((BigInt((h ^ b) >>> 0) * 16777619n) & 0xffffffffn),
        2166136261,
      );
    for (const id of ['', 'a', 'job_x', 'job_01hzy8k3v9q6m2c4t7w5n0r1ds']) expect(seedFromJobId(id), id).toBe(fnv(id));
  });
});
