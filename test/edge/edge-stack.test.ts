// The edge API on Node against the REAL runner, radosgw (S3) and Redis, started through the runner's test harness:
// a long request through job → runner → S3 → result (synchronous and 202), explicit jobs with idempotency,
// streaming a long request through the openai client, a long chat completion, a wrong HMAC secret, and 200+ malformed requests.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEdge } from '../../worker/node-server.ts';
import {
  SECRET,
  ensureRadosgw,
  runTag,
  runnerEnv,
  spawnRunner,
  startRedis,
  waitFor,
  type RedisHandle,
  type RunnerProcess,
} from '../runner/harness.ts';
import {
  EDGE_KEY,
  OTHER_KEY,
  expectError,
  get,
  isOpenAiError,
  post,
  serverTiming,
  startEdge,
  tinyEdgeModel,
} from './helpers.ts';
import { malformedRequests } from './malformed-corpus.ts';

let redis: RedisHandle;
let runner: RunnerProcess;
let edge: RunningEdge;
let edgeModelDir: string;
const model = 'tiny';
const LIMITS = { MAX_BODY_BYTES: String(256 * 1024), MAX_PROMPT_TOKENS: '20000', MAX_NEW_TOKENS: '256' };

// Over the tiny model's training length (2048, the default without deciserve.json): becomes a job with DeciMamba.
const longPrompt = Array.from({ length: 700 }, (_, i) => `w${(i * 7919) % 1000}`).join(' ');

beforeAll(async () => {
  const [s3, redisHandle, models] = await Promise.all([
    ensureRadosgw(),
    startRedis('edge'),
    tinyEdgeModel('edge-stack'),
  ]);
  redis = redisHandle;
  edgeModelDir = models.edgeModel;
  const tag = runTag('edge');
  runner = await spawnRunner(
    runnerEnv(
      { modelDir: models.checkpoint, redisUrl: redis.url, s3, bucket: tag, queue: tag },
      {
        RUNNER_MODEL_ID: model,
        RUNNER_MAX_BODY_BYTES: LIMITS.MAX_BODY_BYTES,
        RUNNER_MAX_PROMPT_TOKENS: LIMITS.MAX_PROMPT_TOKENS,
        RUNNER_MAX_NEW_TOKENS: LIMITS.MAX_NEW_TOKENS,
      },
    ),
  );
  edge = await startEdge(edgeModelDir, {
    MODEL_ID: model,
    RUNNER_URL: runner.url,
    RUNNER_HMAC_SECRET: SECRET,
    JOB_WAIT_MS: '60000',
    JOB_POLL_MS: '50',
    RATE_LIMIT_PER_MINUTE: '5000',
    RATE_LIMIT_EDGE_CPU_MS_PER_MINUTE: '0',
    ...LIMITS,
  }); // the corpus alone is 600+ requests
}, 240_000);

afterAll(async () => {
  await edge?.close();
  runner?.kill('SIGTERM');
  await runner?.exited;
  await redis?.stop();
});

interface CompletionBody {
  id: string;
  choices: { text: string; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number };
  deciserve: {
    ran_on: string;
    job_id?: string;
    engine: string;
    decimation: { config: unknown; kept: { layer: number; tokens: number }[] };
  };
}

describe('routing between the edge and the runner', () => {
  it('answers a short request at the edge', async () => {
    const response = await post(edge, '/v1/completions', {
      model,
      prompt: 'hello there',
      max_tokens: 4,
      temperature: 0,
    });
    const body = (await response.json()) as CompletionBody;
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(response.headers.get('x-deciserve-ran-on')).toBe('edge');
    expect(body.deciserve).toMatchObject({ ran_on: 'edge', engine: 'wasm-simd-fp32' });
  });

  it('runs a long completion as a job (runner → S3) and returns it as if synchronous', async () => {
    const response = await post(edge, '/v1/completions', { model, prompt: longPrompt, max_tokens: 6, temperature: 0 });
    const body = (await response.json()) as CompletionBody;
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(response.headers.get('x-deciserve-ran-on')).toBe('runner');
    const jobId = response.headers.get('x-deciserve-job-id')!;
    expect(jobId).toMatch(/^job_[a-z0-9]{26}$/);
    expect(Object.keys(serverTiming(response))).toEqual(
      expect.arrayContaining(['tokenize', 'route', 'submit', 'wait', 'result', 'total']),
    );
    expect(body.usage.prompt_tokens).toBeGreaterThan(2048);
    expect(body.deciserve).toMatchObject({ ran_on: 'runner', job_id: jobId, engine: 'onnx-wasm-fp32' }); // RUNNER_ENGINE=auto without a GPU
    // decimation "auto" turned DeciMamba on above the training length, and the runner says what it kept.
    expect(body.deciserve.decimation.config).not.toBeNull();
    expect(body.deciserve.decimation.kept[0]!.tokens).toBeLessThan(body.usage.prompt_tokens);

    // The job stays readable: status with a presigned S3 link holding the same result.
    const job = (await (await get(edge, `/v1/jobs/${jobId}`)).json()) as {
      status: string;
      result_url: string;
      url: string;
    };
    expect(job).toMatchObject({ status: 'succeeded', url: `${edge.url}/v1/jobs/${jobId}` });
    const stored = (await (await fetch(job.result_url)).json()) as CompletionBody;
    expect(stored.choices[0]!.text).toBe(body.choices[0]!.text);
  });

  it("waits for the job on the runner's long-poll: one status request per job, however long it runs", async () => {
    const statusReads = async () => {
      const text = await (await fetch(`${runner.url}/metrics`)).text();
      const line = text
        .split('\n')
        .find((l) => l.startsWith('deciserve_runner_intake_requests_total{route="GET /jobs",status="200"}'));
      return Number(line?.split(' ').pop() ?? 0);
    };
    const before = await statusReads();
    // 48 new tokens: long enough that the former 50 ms poll loop read the status several times.
    const response = await post(edge, '/v1/completions', { model, prompt: `${longPrompt} wait`, max_tokens: 48 });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-deciserve-ran-on')).toBe('runner');
    expect((await statusReads()) - before).toBe(1);
  });

  it('answers 202 with the job URL when the job is not done in time, then the job completes', async () => {
    const response = await post(
      edge,
      '/v1/completions',
      { model, prompt: `${longPrompt} again`, max_tokens: 4 },
      { prefer: 'respond-async' },
    );
    const accepted = (await response.json()) as { id: string; status: string; url: string };
    expect(response.status, JSON.stringify(accepted)).toBe(202);
    expect(response.headers.get('location')).toBe(accepted.url);
    expect(['queued', 'running']).toContain(accepted.status);
    const done = await waitFor(
      'job done',
      async () => {
        const view = (await (
          await fetch(accepted.url, { headers: { authorization: `Bearer ${EDGE_KEY}` } })
        ).json()) as { status: string; result_url?: string };
        return view.status === 'succeeded' ? view : null;
      },
      60_000,
    );
    const result = (await (await fetch(done.result_url!)).json()) as CompletionBody;
    expect(result.choices[0]!.text.length).toBeGreaterThanOrEqual(0);
    expect(result.usage.completion_tokens).toBeLessThanOrEqual(4);
  });

  it('scores a long text on the runner', async () => {
    const response = await post(edge, '/v1/score', {
      model,
      prompt: longPrompt,
      continuation: ' w1 w2 w3',
      decimation: 'off',
    });
    const body = (await response.json()) as {
      token_strings: string[];
      logprobs: number[];
      perplexity: number;
      deciserve: { ran_on: string };
    };
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(response.headers.get('x-deciserve-ran-on')).toBe('runner');
    expect(body.token_strings.join('')).toBe(' w1 w2 w3');
    expect(body.logprobs.length).toBe(body.token_strings.length);
    expect(body.deciserve.ran_on).toBe('runner');
  });

  it('streams a long completion through the openai client', async () => {
    const openai = new OpenAI({ apiKey: EDGE_KEY, baseURL: `${edge.url}/v1`, maxRetries: 0 });
    const stream = await openai.completions.create({
      model,
      prompt: `${longPrompt} stream`,
      max_tokens: 5,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: { prompt_tokens: number } | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(usage!.prompt_tokens).toBeGreaterThan(2048);
    const again = await openai.completions.create({
      model,
      prompt: `${longPrompt} stream`,
      max_tokens: 5,
      temperature: 0,
    });
    expect(text).toBe(again.choices[0]!.text);
  });
});

describe('chat completions on the runner', () => {
  it('answers a long chat as a runner job through the openai client, plain and streamed', async () => {
    const openai = new OpenAI({ apiKey: EDGE_KEY, baseURL: `${edge.url}/v1`, maxRetries: 0 });
    const messages = [{ role: 'user' as const, content: `${longPrompt} chat` }];
    const { data, response } = await openai.chat.completions
      .create({ model, messages, max_tokens: 5, temperature: 0 })
      .withResponse();
    expect(response.headers.get('x-deciserve-ran-on')).toBe('runner');
    expect(data.object).toBe('chat.completion');
    expect(data.choices[0]!.message.role).toBe('assistant');
    expect(data.usage!.prompt_tokens).toBeGreaterThan(2048);
    expect((data as unknown as CompletionBody).deciserve).toMatchObject({
      ran_on: 'runner',
      job_id: response.headers.get('x-deciserve-job-id'),
    });

    const stream = await openai.chat.completions.create({
      model,
      messages,
      max_tokens: 5,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe(data.choices[0]!.message.content);
    expect(usage).toEqual(data.usage);
  });
});

describe('explicit jobs', () => {
  it('submits idempotently per API key, refuses a reused key with another body, and cancels nothing that ran', async () => {
    const job = { type: 'completion', model, prompt: 'hello world', max_tokens: 3 };
    const key = `idem-${Date.now()}`;
    const first = await post(edge, '/v1/jobs', job, { 'idempotency-key': key });
    const created = (await first.json()) as { id: string; url: string };
    expect(first.status, JSON.stringify(created)).toBe(202);
    // The headers of an async completion: where to poll, and when.
    expect(first.headers.get('location')).toBe(created.url);
    expect(first.headers.get('x-deciserve-job-id')).toBe(created.id);
    expect(first.headers.get('retry-after')).toBe('2');
    const second = await post(edge, '/v1/jobs', job, { 'idempotency-key': key });
    expect(second.status).toBe(200);
    expect(((await second.json()) as { id: string }).id).toBe(created.id);
    // The same Idempotency-Key under another API key is another tenant's job.
    const other = await post(edge, '/v1/jobs', job, { 'idempotency-key': key, authorization: `Bearer ${OTHER_KEY}` });
    expect(other.status).toBe(202);
    expect(((await other.json()) as { id: string }).id).not.toBe(created.id);
    await expectError(
      await post(edge, '/v1/jobs', { ...job, max_tokens: 4 }, { 'idempotency-key': key }),
      409,
      'idempotency_key_reused',
    );

    const done = await waitFor('job succeeded', async () => {
      const view = (await (await get(edge, `/v1/jobs/${created.id}`)).json()) as {
        status: string;
        result_url?: string;
      };
      return view.status === 'succeeded' ? view : null;
    });
    expect(done.result_url).toMatch(/^http/);
    await expectError(
      await fetch(`${edge.url}/v1/jobs/${created.id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${EDGE_KEY}` },
      }),
      409,
      'job_not_cancellable',
    );
    await expectError(await get(edge, '/v1/jobs/job_aaaaaaaaaaaaaaaaaaaaaaaaaa'), 404, 'job_not_found');
  });

  it("reports a wrong runner secret as a server problem (502), never as the client's auth failure", async () => {
    const misconfigured = await startEdge(edgeModelDir, {
      MODEL_ID: model,
      RUNNER_URL: runner.url,
      RUNNER_HMAC_SECRET: 'not-the-runner-secret-000',
      ...LIMITS,
    });
    try {
      await expectError(
        await post(misconfigured, '/v1/jobs', { type: 'completion', model, prompt: 'x' }),
        502,
        'runner_rejected_signature',
      );
    } finally {
      await misconfigured.close();
    }
  });
});

describe('malformed requests', () => {
  it('answers every one of 600+ malformed requests with a 4xx OpenAI error, never a 5xx, and keeps serving', async () => {
    const corpus = malformedRequests();
    expect(corpus.length).toBeGreaterThanOrEqual(600);
    const failures: string[] = [];
    for (const item of corpus) {
      const response = await fetch(edge.url + item.path, {
        method: item.method ?? 'POST',
        body: item.body as BodyInit | undefined,
        headers: {
          authorization: `Bearer ${EDGE_KEY}`,
          ...(item.body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...item.headers,
        },
      });
      const text = await response.text();
      let shaped = false;
      try {
        shaped = isOpenAiError(JSON.parse(text));
      } catch {
        shaped = false;
      }
      if (
        response.status < 400 ||
        response.status >= 500 ||
        !shaped ||
        (item.expect && response.status !== item.expect)
      ) {
        failures.push(`${item.name}: ${response.status} ${text.slice(0, 160)}`);
      }
    }
    expect(failures).toEqual([]);
    expect((await fetch(`${edge.url}/healthz`)).status).toBe(200);
    expect((await post(edge, '/v1/completions', { model, prompt: 'still alive', max_tokens: 2 })).status).toBe(200);
  }, 180_000);
});
