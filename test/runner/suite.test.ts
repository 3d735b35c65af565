// A benchmark suite as one job (`type: "suite"`) against real radosgw and Redis: through the signed intake, run in
// sub-passes of at most 64 samples, one result object with per-sample records and the summary stored in S3; bad
// specs refused at intake with a JSON 400.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bucketFromEnv, listSuiteSummaries } from '../../bench/quality/s3.ts';
import type { SuiteResult } from '../../protocol/suite-spec.ts';
import {
  JobClient,
  ensureRadosgw,
  freshDir,
  runTag,
  runnerEnv,
  spawnRunner,
  startRedis,
  writeTinyCheckpoint,
  type RedisHandle,
  type RunnerProcess,
  type S3Env,
} from './harness.ts';

let redis: RedisHandle;
let runner: RunnerProcess;
let client: JobClient;
let s3: S3Env;
let bucket: string;

beforeAll(async () => {
  const [s3Env, redisHandle, dir] = await Promise.all([ensureRadosgw(), startRedis('suite'), freshDir('runner-suite')]);
  [s3, redis] = [s3Env, redisHandle];
  const modelDir = await writeTinyCheckpoint(join(dir, 'tiny')); // its haystack.txt: ~20K tokens of filler text
  bucket = runTag('suite');
  runner = await spawnRunner(
    runnerEnv(
      { modelDir, redisUrl: redis.url, s3, bucket, queue: bucket },
      { RUNNER_MAX_PROMPT_TOKENS: '100000', RUNNER_IDLE_POLL_MS: '100' },
    ),
  );
  client = new JobClient(runner.url);
}, 240_000);

afterAll(async () => {
  runner?.kill('SIGTERM');
  await runner?.exited;
  await redis?.stop();
});

const suite = (spec: Record<string, unknown>) => ({ type: 'suite', model: 'tiny', suite: spec });

describe('suite jobs', () => {
  it('a passkey suite runs as one job in sub-passes of at most 64 samples; its result in S3 has every sample and the summary', async () => {
    // 3 depths × 11 samples × 2 variants = 66 prompts of 128 tokens: two sub-passes (64 + 2).
    const spec = {
      task: 'passkey',
      lengths: [128],
      depths: [0, 0.5, 1],
      samples: 11,
      seed: 3,
      variants: ['mamba', 'decimamba'],
    };
    const { status, body } = await client.submit(suite(spec), 'suite-passkey');
    expect(status).toBe(202);
    expect(body).toMatchObject({ object: 'job', type: 'suite', status: 'queued', prompt_tokens: 66 * 128 });
    const view = await client.waitDone(body.id, 120_000);
    expect(view.status).toBe('succeeded');
    const result = await client.result<SuiteResult>(view);
    expect(result).toMatchObject({
      id: body.id,
      object: 'bench_suite',
      model: 'tiny',
      spec: { ...spec, model: 'tiny' },
    });
    expect(result.samples).toHaveLength(66);
    expect(new Set(result.samples.map((s) => s.key)).size).toBe(66);
    expect(
      result.samples.every(
        (s) => s.ok && typeof s.answer === 'string' && typeof s.correct === 'boolean' && s.promptTokens! > 100,
      ),
    ).toBe(true);
    expect(result.summary.byLength.mamba!['128']).toMatchObject({ n: 33, failed: 0 });
    expect(result.summary.byLength.decimamba!['128']).toMatchObject({ n: 33, failed: 0 });
    expect(result.usage.prompt_tokens).toBe(result.samples.reduce((a, s) => a + s.promptTokens!, 0));
    expect(result.deciserve.decimation.config).not.toBeNull();
    expect(result.deciserve.wall_seconds).toBeGreaterThan(0);

    const subPasses = runner.logs.filter((l) => l.msg === 'suite sub-pass done' && l.suite === body.id);
    expect(subPasses.map((l) => l.jobs)).toEqual([64, 2]);
    expect(subPasses.at(-1)).toMatchObject({ done: 66, total: 66, failed: 0 });

    // The same Idempotency-Key collects the same job; the report finds the stored suite among the results.
    const again = await client.submit(suite(spec), 'suite-passkey');
    expect(again).toMatchObject({ status: 200, body: { id: body.id, status: 'succeeded' } });
    const keys = await listSuiteSummaries({ ...bucketFromEnv({ ...s3, S3_BUCKET: bucket })!, prefix: '' });
    expect(keys).toContain(`results/${body.id}.json`);
  }, 180_000);

  it('a perplexity suite scores every window; one the held-out text cannot fill fails the job at once', async () => {
    const ok = await client.submit(
      suite({ task: 'perplexity', lengths: [200, 300], samples: 2, variants: ['decimamba'] }),
    );
    expect(ok.body).toMatchObject({ type: 'suite', prompt_tokens: 2 * 200 + 2 * 300 });
    const result = await client.result<SuiteResult>(await client.waitDone(ok.body.id, 60_000));
    expect(result.samples).toHaveLength(4);
    expect(result.samples.every((s) => s.ok && s.perplexity! > 1 && s.meanNll! > 0)).toBe(true);
    expect(Object.keys(result.summary.byLength.decimamba!)).toEqual(['200', '300']);

    const tooLong = await client.submit(suite({ task: 'perplexity', lengths: [60_000], samples: 1 }));
    const failed = await client.waitDone(tooLong.body.id, 60_000);
    expect(failed).toMatchObject({
      status: 'failed',
      attempts: 1,
      error: { code: 'invalid_job', message: expect.stringMatching(/held-out text has \d+ tokens/) },
    });
  }, 120_000);

  it('bad suite specs get a 400 with a JSON error', async () => {
    const passkey = { task: 'passkey', lengths: [128], depths: [0.5], samples: 1 };
    const cases: Array<[string, Record<string, unknown>, string, RegExp]> = [
      ['length under 128', suite({ ...passkey, lengths: [64] }), 'suite.lengths.0', /128/],
      [
        'length over the prompt-token limit',
        suite({ ...passkey, lengths: [200_000] }),
        'suite.lengths',
        /at most 100000/,
      ],
      [
        'too many prompts',
        suite({ ...passkey, lengths: [128, 256], depths: [0, 0.5, 1], samples: 1000 }),
        'suite.samples',
        /12000 prompts.*at most 5000/,
      ],
      ['passkey without depths', suite({ task: 'passkey', lengths: [128], samples: 1 }), 'suite.depths', /need depths/],
      ['perplexity with depths', suite({ ...passkey, task: 'perplexity' }), 'suite.depths', /only for passkey/],
      ['depth outside [0, 1]', suite({ ...passkey, depths: [1.5] }), 'suite.depths.0', /1/],
      ['unknown variant', suite({ ...passkey, variants: ['mamba', 'gpt'] }), 'suite.variants.1', /mamba/],
      ['repeated length', suite({ ...passkey, lengths: [128, 128] }), 'suite.lengths', /distinct/],
      ['unknown field in the suite', suite({ ...passkey, shots: 3 }), 'suite', /shots/],
      ['a prompt on a suite job', { ...suite(passkey), prompt: 'hi' }, '', /prompt/],
      ['no suite', { type: 'suite', model: 'tiny' }, 'suite', /object/],
      ['unknown job type', { ...suite(passkey), type: 'suites' }, 'type', /"completion"\|"score"\|"suite"/],
    ];
    for (const [name, job, param, message] of cases) {
      const res = await client.request('POST', '/jobs', JSON.stringify(job));
      const body = (await res.json()) as {
        error: { message: string; type: string; param: string | null; code: string };
      };
      expect(res.status, name).toBe(400);
      expect(body.error.type, name).toBe('invalid_request_error');
      expect(body.error.param ?? '', name).toBe(param);
      expect(body.error.message, name).toMatch(message);
    }
  });
});
