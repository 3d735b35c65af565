// The signed intake against real radosgw and Redis: job → runner → S3 → result, idempotency, auth, webhooks,
// cancellation, and a corpus of malformed requests that must all be answered 4xx.
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import {
  NONCE_HEADER,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  signedHeaders,
  verifySignature,
} from '../../protocol/signing.ts';
import { malformedRequests } from './malformed-corpus.ts';
import {
  JobClient,
  SECRET,
  WEBHOOK_SECRET,
  ensureRadosgw,
  freshDir,
  runTag,
  runnerEnv,
  spawnRunner,
  startRedis,
  waitFor,
  writeTinyCheckpoint,
  type JobView,
  type RedisHandle,
  type RunnerProcess,
} from './harness.ts';

let redis: RedisHandle;
let runner: RunnerProcess; // intake + worker
let intakeOnly: RunnerProcess; // intake without a worker: jobs stay queued
let client: JobClient;
let hooks: Server;
let hookUrl: string;
const received: Array<{ headers: Record<string, string | string[] | undefined>; body: Buffer; path: string }> = [];

beforeAll(async () => {
  const [s3, redisHandle, dir] = await Promise.all([ensureRadosgw(), startRedis('intake'), freshDir('runner-intake')]);
  redis = redisHandle;
  const modelDir = await writeTinyCheckpoint(join(dir, 'tiny'));
  const tag = runTag('intake');
  const base = { modelDir, redisUrl: redis.url, s3, bucket: tag, queue: tag };
  const limits = {
    RUNNER_MAX_BODY_BYTES: String(256 * 1024),
    RUNNER_MAX_PROMPT_TOKENS: '20000',
    RUNNER_MAX_NEW_TOKENS: '256',
    RUNNER_TRAIN_LEN: '64',
  };
  [runner, intakeOnly] = await Promise.all([
    spawnRunner(runnerEnv(base, limits)),
    spawnRunner(runnerEnv({ ...base, queue: `${tag}-idle` }, { ...limits, RUNNER_ROLES: 'intake' })),
  ]);
  client = new JobClient(runner.url);
  hooks = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks), path: req.url ?? '' });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(hooks.address() as { port: number }).port}/hook?src=test`;
}, 240_000);

afterAll(async () => {
  runner?.kill('SIGTERM');
  intakeOnly?.kill('SIGTERM');
  await Promise.all([runner?.exited, intakeOnly?.exited]);
  hooks?.close();
  await redis?.stop();
});

describe('jobs through the runner', () => {
  it('runs a completion job and stores its result in S3 behind a presigned URL', async () => {
    const { status, body } = await client.submit({
      type: 'completion',
      model: 'tiny',
      prompt: 'The quick brown fox',
      max_tokens: 6,
      decimation: 'off',
    });
    expect(status).toBe(202);
    expect(body).toMatchObject({ object: 'job', status: 'queued', type: 'completion' });
    const view = await client.waitDone(body.id);
    expect(view.status).toBe('succeeded');
    expect(view.result_url).toMatch(/X-Amz-Signature=/);
    const result = await client.result<{
      choices: Array<{ text: string; finish_reason: string }>;
      usage: Record<string, number>;
      deciserve: { decimation: { config: unknown } };
    }>(view);
    expect(result).toMatchObject({ id: body.id, object: 'text_completion', model: 'tiny' });
    expect(result.usage.completion_tokens).toBeLessThanOrEqual(6);
    expect(result.usage.prompt_tokens).toBe(body.prompt_tokens);
    expect(result.deciserve.decimation.config).toBeNull();
  });

  it('runs a score job, and DeciMamba when asked, reporting the kept tokens', async () => {
    const prompt = 'alpha beta gamma delta '.repeat(20);
    const { body } = await client.submit({
      type: 'score',
      model: 'tiny',
      prompt,
      continuation: ' epsilon',
      decimation: 'on',
      decimation_params: { l_base: 16, min_seq_len: 4 },
    });
    const view = await client.waitDone(body.id);
    expect(view.status).toBe('succeeded');
    const result = await client.result<{
      logprobs: number[];
      perplexity: number;
      tokens: number[];
      deciserve: { decimation: { kept: Array<{ layer: number; tokens: number }> } };
    }>(view);
    expect(result.logprobs.length).toBe(result.tokens.length);
    expect(result.logprobs.every((lp) => lp <= 0)).toBe(true);
    expect(result.perplexity).toBeGreaterThan(1);
    expect(result.deciserve.decimation.kept).toEqual([{ layer: 1, tokens: expect.any(Number) }]);
    expect(result.deciserve.decimation.kept[0]!.tokens).toBeLessThan(body.prompt_tokens!);
  });

  it('turns decimation on automatically above the training length', async () => {
    const { body } = await client.submit({
      type: 'completion',
      model: 'tiny',
      prompt: 'word '.repeat(60),
      max_tokens: 2,
    });
    const view = await client.waitDone(body.id);
    expect(view, runner.output().slice(-2000)).toMatchObject({ status: 'succeeded' });
    const result = await client.result<{ deciserve: { decimation: { config: { layers: number[] } | null } } }>(view);
    expect(result.deciserve.decimation.config?.layers).toEqual([1]);
  });

  it('treats a resubmission with the same Idempotency-Key as the same job, and refuses the key for another request', async () => {
    const job = { type: 'completion', model: 'tiny', prompt: 'same job', max_tokens: 3, temperature: 0.8 };
    const first = await client.submit(job, 'idem-1');
    const again = await Promise.all([client.submit(job, 'idem-1'), client.submit(job, 'idem-1')]);
    for (const r of again) expect(r.body.id).toBe(first.body.id);
    const done = await client.waitDone(first.body.id);
    const resultA = await client.result(done);
    const late = await client.submit(job, 'idem-1');
    expect(late.status).toBe(200);
    expect(late.body).toMatchObject({ id: first.body.id, status: 'succeeded' });
    expect(await client.result(late.body)).toEqual(resultA);
    expect(runner.succeeded().filter((id) => id === first.body.id)).toHaveLength(1);
    const other = await client.submit({ ...job, prompt: 'another job' }, 'idem-1');
    expect(other.status).toBe(409);
    expect(other.body).toMatchObject({ error: { code: 'idempotency_key_reused', type: 'conflict_error' } });
  });

  it('delivers a webhook signed the Standard Webhooks way with RUNNER_WEBHOOK_SECRET, not the intake secret', async () => {
    const { body } = await client.submit({
      type: 'completion',
      model: 'tiny',
      prompt: 'hook me',
      max_tokens: 2,
      webhook: { url: hookUrl },
    });
    const hook = await waitFor('webhook', () => received.find((r) => r.body.toString().includes(body.id)), 30_000);
    const headers = hook.headers as Record<string, string>;
    const event = new Webhook(WEBHOOK_SECRET).verify(hook.body.toString(), headers) as Record<string, any>;
    expect(headers['webhook-id']).toBe(`evt_${body.id}`);
    expect(() =>
      new Webhook(`whsec_${Buffer.from(SECRET).toString('base64')}`).verify(hook.body.toString(), headers),
    ).toThrow(WebhookVerificationError);
    expect(headers[SIGNATURE_HEADER]).toBeUndefined(); // nothing an intake would accept
    expect(event).toMatchObject({ object: 'event', type: 'job.succeeded', data: { id: body.id, status: 'succeeded' } });
    expect(event.data.result_url).toMatch(/^http/);
  });

  it('cancels a queued job', async () => {
    const idle = new JobClient(intakeOnly.url);
    const { body } = await idle.submit({ type: 'completion', model: 'tiny', prompt: 'never run', max_tokens: 2 });
    const res = await idle.request('DELETE', `/jobs/${body.id}`);
    expect(res.status).toBe(200);
    expect(await idle.get(body.id)).toMatchObject({ status: 'cancelled', error: { code: 'cancelled' } });
    const unknown = await idle.request('DELETE', '/jobs/job_aaaaaaaaaaaaaaaaaaaaaaaaaa');
    expect(unknown.status).toBe(404);
  });

  it('long-polls: GET ?wait= answers when the job ends, or with the job as it stands when the wait runs out', async () => {
    const { body } = await client.submit({ type: 'completion', model: 'tiny', prompt: 'wait for me', max_tokens: 8 });
    const done = (await (await client.request('GET', `/jobs/${body.id}?wait=30`)).json()) as JobView;
    expect(done.status).toBe('succeeded'); // one request, answered when the job ended (not after 30 s)
    expect(done.result_url).toBeTruthy();

    const idle = new JobClient(intakeOnly.url); // no worker: the job stays queued
    const { body: queued } = await idle.submit({
      type: 'completion',
      model: 'tiny',
      prompt: 'still here',
      max_tokens: 2,
    });
    const t0 = Date.now();
    const stillQueued = (await (await idle.request('GET', `/jobs/${queued.id}?wait=1.5`)).json()) as JobView;
    expect(stillQueued.status).toBe('queued');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500); // it did wait
    for (const bad of ['31', '-1', 'soon', '1e3', '0.0001']) {
      const res = await idle.request('GET', `/jobs/${queued.id}?wait=${bad}`);
      expect(res.status, bad).toBe(400);
      expect(await res.json()).toMatchObject({ error: { code: 'invalid_wait', param: 'wait' } });
    }
  }, 60_000);

  it('exposes health, readiness and Prometheus metrics', async () => {
    expect((await fetch(`${runner.url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${runner.url}/readyz`)).json()).toMatchObject({
      ready: true,
      checks: { redis: 'ok', s3: 'ok', engine: 'ok' },
    });
    const text = await (await fetch(`${runner.url}/metrics`)).text();
    for (const name of [
      'deciserve_runner_queue_jobs{state="waiting"}',
      'deciserve_runner_batch_jobs_bucket',
      'deciserve_runner_tokens_total{kind="prompt"',
      'deciserve_runner_tokens_per_second',
      'deciserve_runner_job_stage_seconds_bucket{le="0.005",stage="queue_wait"',
      'deciserve_runner_engine_seconds_total{engine="onnx-wasm-fp32",device="cpu"',
      'deciserve_runner_s3_requests_total{op="put_results",outcome="ok"}',
      'deciserve_runner_jobs_total{type="completion",outcome="succeeded"}',
    ]) {
      expect(text, name).toContain(name);
    }
  });
});

describe('authentication', () => {
  const body = JSON.stringify({ type: 'completion', model: 'tiny', prompt: 'auth', max_tokens: 1 });
  const post = (headers: Record<string, string>, payload = body, path = '/jobs') =>
    fetch(intakeOnly.url + path, {
      method: 'POST',
      body: payload,
      headers: { 'content-type': 'application/json', ...headers },
    });
  const expect401 = async (res: Response, code: string) => {
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({
      error: { message: expect.any(String), type: 'authentication_error', param: null, code },
    });
  };

  it('refuses unsigned requests', async () => {
    await expect401(await post({}), 'missing_signature');
  });
  it('refuses a bad signature, a wrong secret, and a signature made for another body or path', async () => {
    const good = await signedHeaders(SECRET, { method: 'POST', path: '/jobs', body });
    await expect401(await post({ ...good, [SIGNATURE_HEADER]: `v1=${'0'.repeat(64)}` }), 'invalid_signature');
    await expect401(
      await post(await signedHeaders('not-the-secret-at-all', { method: 'POST', path: '/jobs', body })),
      'invalid_signature',
    );
    await expect401(
      await post(await signedHeaders(SECRET, { method: 'POST', path: '/jobs', body: body + ' ' })),
      'invalid_signature',
    );
    await expect401(
      await post(await signedHeaders(SECRET, { method: 'POST', path: '/jobs/x', body })),
      'invalid_signature',
    );
  });
  it('refuses stale and future timestamps', async () => {
    await expect401(
      await post(await signedHeaders(SECRET, { method: 'POST', path: '/jobs', body, now: Date.now() - 10 * 60_000 })),
      'stale_timestamp',
    );
    await expect401(
      await post(await signedHeaders(SECRET, { method: 'POST', path: '/jobs', body, now: Date.now() + 10 * 60_000 })),
      'stale_timestamp',
    );
  });
  it('refuses a replay of a request it accepted', async () => {
    const headers = await signedHeaders(SECRET, { method: 'POST', path: '/jobs', body });
    expect((await post(headers)).status).toBe(202);
    await expect401(await post(headers), 'replayed_request');
  });
  it('signs status reads too', async () => {
    const res = await fetch(`${intakeOnly.url}/jobs/job_aaaaaaaaaaaaaaaaaaaaaaaaaa`);
    await expect401(res, 'missing_signature');
  });
});

describe('malformed requests', () => {
  it('answers every one of 200+ malformed requests with a 4xx JSON error, never a 5xx', async () => {
    const corpus = malformedRequests();
    expect(corpus.length).toBeGreaterThanOrEqual(200);
    const idle = new JobClient(intakeOnly.url);
    const failures: string[] = [];
    for (const item of corpus) {
      const signed = item.unsigned
        ? {}
        : await signedHeaders(SECRET, { method: item.method ?? 'POST', path: item.path ?? '/jobs', body: item.body });
      const res = await fetch(intakeOnly.url + (item.path ?? '/jobs'), {
        method: item.method ?? 'POST',
        body: item.body as BodyInit | undefined,
        headers: { ...signed, 'content-type': 'application/json', ...item.headers },
      });
      const text = await res.text();
      let shapeOk = false;
      try {
        const json = JSON.parse(text);
        shapeOk =
          typeof json.error?.message === 'string' &&
          typeof json.error?.type === 'string' &&
          'param' in json.error &&
          'code' in json.error;
      } catch {
        shapeOk = false;
      }
      if (res.status < 400 || res.status >= 500 || !shapeOk || (item.expect && res.status !== item.expect)) {
        failures.push(`${item.name}: ${res.status} ${text.slice(0, 160)}`);
      }
    }
    expect(failures).toEqual([]);
    // Nothing was accepted, and the runner is still healthy.
    expect((await fetch(`${intakeOnly.url}/healthz`)).status).toBe(200);
    expect(await idle.get('job_aaaaaaaaaaaaaaaaaaaaaaaaaa')).toMatchObject({ error: { code: 'job_not_found' } });
  }, 120_000);
});
