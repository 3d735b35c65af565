// Pure parts of the runner: signing, pass planning, job ids, request validation, decimation, configuration.
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fitsPass } from '../../runner/pass/batch-loop.ts';
import { ConfigError, configFromEnv } from '../../runner/config.ts';
import { jobRequestSchema, resolveDecimation, seedFromJobId } from '../../protocol/job-request.ts';
import { canonicalJson, isJobId, jobIdFor } from '../../runner/store/jobs.ts';
import { readModelDefaults } from '../../runner/model-defaults.ts';
import { isRetryableS3Error } from '../../runner/store/s3-store.ts';
import { TMP } from './harness.ts';
import { sign, signedHeaders, verifySignature, type SignedParts } from '../../protocol/signing.ts';

const enc = new TextEncoder();
const parts = (over: Partial<SignedParts> = {}): SignedParts => ({
  timestamp: 1_700_000_000,
  nonce: 'abcdefghijklmnop',
  method: 'POST',
  path: '/jobs',
  body: enc.encode('{"a":1}'),
  ...over,
});

describe('signing', () => {
  it('verifies its own signature and rejects any change to body, path, method, timestamp, nonce or secret', async () => {
    const sig = await sign('s3cret-s3cret-s3cret', parts());
    expect(sig).toMatch(/^v1=[0-9a-f]{64}$/);
    expect(await verifySignature('s3cret-s3cret-s3cret', parts(), sig)).toBe(true);
    for (const changed of [
      parts({ body: enc.encode('{"a":2}') }),
      parts({ path: '/jobs/x' }),
      parts({ method: 'GET' }),
      parts({ timestamp: 1_700_000_001 }),
      parts({ nonce: 'abcdefghijklmnoq' }),
    ]) {
      expect(await verifySignature('s3cret-s3cret-s3cret', changed, sig)).toBe(false);
    }
    expect(await verifySignature('other-secret-other', parts(), sig)).toBe(false);
  });

  it('rejects malformed signature headers without throwing', async () => {
    for (const header of ['', 'v1=', 'v2=00', 'v1=zz', 'v1=abc', `v1=${'0'.repeat(64)}`, '=', 'v1']) {
      expect(await verifySignature('s3cret-s3cret-s3cret', parts(), header)).toBe(false);
    }
  });

  it('signedHeaders produces headers that verify', async () => {
    const h = await signedHeaders('s3cret-s3cret-s3cret', {
      method: 'POST',
      path: '/jobs',
      body: '{"a":1}',
      now: 1_700_000_000_500,
    });
    expect(h['x-deciserve-timestamp']).toBe('1700000000');
    const ok = await verifySignature(
      's3cret-s3cret-s3cret',
      parts({ nonce: h['x-deciserve-nonce']! }),
      h['x-deciserve-signature']!,
    );
    expect(ok).toBe(true);
  });
});

describe('pass planning', () => {
  const budget = { maxTokens: 1000, maxJobs: 3 };
  it('always takes the first job, even one over budget', () => {
    expect(fitsPass({ jobs: 0, tokens: 0 }, 5000, budget)).toBe(true);
  });
  it('adds jobs while the token budget and job cap allow', () => {
    expect(fitsPass({ jobs: 1, tokens: 400 }, 600, budget)).toBe(true);
    expect(fitsPass({ jobs: 1, tokens: 400 }, 601, budget)).toBe(false);
    expect(fitsPass({ jobs: 3, tokens: 10 }, 1, budget)).toBe(false);
  });
});

describe('job ids', () => {
  it('maps an Idempotency-Key to the same id every time, and different keys apart', () => {
    expect(jobIdFor('k1')).toBe(jobIdFor('k1'));
    expect(jobIdFor('k1')).not.toBe(jobIdFor('k2'));
    expect(isJobId(jobIdFor('k1'))).toBe(true);
    expect(jobIdFor(undefined)).not.toBe(jobIdFor(undefined));
    expect(isJobId('job_../../etc')).toBe(false);
  });
  it('canonical JSON ignores key order and undefined fields', () => {
    expect(canonicalJson({ b: 1, a: [{ d: 2, c: undefined }] })).toBe(canonicalJson({ a: [{ d: 2 }], b: 1 }));
  });
  it('derives a stable seed from the job id', () => {
    expect(seedFromJobId('job_x')).toBe(seedFromJobId('job_x'));
    expect(seedFromJobId('job_x')).not.toBe(seedFromJobId('job_y'));
  });
});

describe('job requests', () => {
  const schema = jobRequestSchema({ maxNewTokens: 64, maxPromptChars: 1000 });
  it('fills defaults', () => {
    const r = schema.parse({ type: 'completion', model: 'm', prompt: 'hi' });
    expect(r).toMatchObject({ max_tokens: 16, temperature: 0, top_p: 1, decimation: 'auto', priority: 5 });
  });
  it('refuses absurd values and unknown fields', () => {
    for (const bad of [
      { max_tokens: 65 },
      { max_tokens: 1e12 },
      { temperature: -1 },
      { top_p: 0 },
      { priority: 0 },
      { stop: ['a', 'b', 'c', 'd', 'e'] },
      { extra: 1 },
      { continuation: 'x' },
      { prompt: 'x'.repeat(1001) },
    ]) {
      expect(
        schema.safeParse({ type: 'completion', model: 'm', prompt: 'hi', ...bad }).success,
        JSON.stringify(bad).slice(0, 80),
      ).toBe(false);
    }
  });
  it('decimation auto turns on above the training length, with the model-scaled default layer', () => {
    const r = schema.parse({ type: 'completion', model: 'm', prompt: 'hi' });
    const model = { nLayer: 24, trainLen: 2048, decimation: { layers: [12], beta: 0.5, lBase: 2000, minSeqLen: 20 } };
    expect(resolveDecimation(r, 100, model)).toBeNull();
    expect(resolveDecimation(r, 4096, model)).toEqual({ layers: [12], beta: 0.5, lBase: 2000, minSeqLen: 20 });
    const off = schema.parse({ type: 'completion', model: 'm', prompt: 'hi', decimation: 'off' });
    expect(resolveDecimation(off, 1e6, model)).toBeNull();
    const tuned = schema.parse({
      type: 'completion',
      model: 'm',
      prompt: 'hi',
      decimation: 'on',
      decimation_params: { l_base: 500 },
    });
    expect(resolveDecimation(tuned, 10, model)).toEqual({ layers: [12], beta: 0.5, lBase: 500, minSeqLen: 20 });
    const bad = schema.parse({
      type: 'completion',
      model: 'm',
      prompt: 'hi',
      decimation: 'on',
      decimation_params: { layers: [30] },
    });
    expect(() => resolveDecimation(bad, 10, model)).toThrow(/layer 30/);
  });
});

describe('model defaults', () => {
  it("reads the training length and DeciMamba layers from the checkpoint's deciserve.json", async () => {
    const dir = join(TMP, 'runner-units-card');
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    expect(await readModelDefaults(dir, 12)).toEqual({
      nLayer: 12,
      trainLen: 2048,
      decimation: { layers: [6], beta: 0.5, lBase: 2000, minSeqLen: 20 },
    });
    const decimation = { layers: [11], beta: 0.5, lBase: 1000, minSeqLen: 20 };
    await writeFile(join(dir, 'deciserve.json'), JSON.stringify({ trainingLength: 1024, decimation, steps: 5 }));
    expect(await readModelDefaults(dir, 12)).toEqual({ nLayer: 12, trainLen: 1024, decimation });
    expect((await readModelDefaults(dir, 12, 4096)).trainLen).toBe(4096);
    await expect(readModelDefaults(dir, 8)).rejects.toThrow(/layer 11/);
  });

  it('still reads the training length of a card written with the older snake_case key', async () => {
    const dir = join(TMP, 'runner-units-card-legacy');
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'deciserve.json'), JSON.stringify({ training_length: 4000 }));
    expect((await readModelDefaults(dir, 12)).trainLen).toBe(4000);
  });
});

describe('configuration', () => {
  it('reads the environment and refuses a missing secret', () => {
    const c = configFromEnv({
      RUNNER_HMAC_SECRET: 'x'.repeat(16),
      RUNNER_WEBHOOK_SECRET: `whsec_${'A'.repeat(44)}`,
      RUNNER_MODEL_DIR: '/models/mamba-130m',
      RUNNER_BATCH_TOKENS: '4096',
    });
    expect(c.modelId).toBe('mamba-130m');
    expect(c.batch.maxTokens).toBe(4096);
    expect([...c.roles]).toEqual(['intake', 'worker']);
    expect(() => configFromEnv({ RUNNER_MODEL_DIR: '/m' })).toThrow(ConfigError);
    expect(() =>
      configFromEnv({ RUNNER_HMAC_SECRET: 'x'.repeat(16), RUNNER_MODEL_DIR: '/m', RUNNER_ENGINE: 'tpu' }),
    ).toThrow(/RUNNER_ENGINE/);
  });
});

describe('S3 error classification', () => {
  it('retries 5xx, 429 and network errors but not 4xx', () => {
    expect(isRetryableS3Error({ $metadata: { httpStatusCode: 503 } })).toBe(true);
    expect(isRetryableS3Error({ $metadata: { httpStatusCode: 429 } })).toBe(true);
    expect(isRetryableS3Error(new Error('ECONNREFUSED'))).toBe(true);
    expect(isRetryableS3Error({ $metadata: { httpStatusCode: 412 } })).toBe(false);
    expect(isRetryableS3Error({ $metadata: { httpStatusCode: 403 } })).toBe(false);
  });
});
