// Runs inside workerd: the edge API Worker (worker/index.ts) with the shipped model from its assets binding.
import { exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { WORKERD_TEST_KEYS } from './keys.ts';

const [KEY, RATE_KEY] = WORKERD_TEST_KEYS as [string, string];

function call(
  path: string,
  init: { method?: string; body?: unknown; key?: string | null; raw?: BodyInit; headers?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = { ...init.headers };
  if (init.key !== null) headers.authorization = `Bearer ${init.key ?? KEY}`;
  if (init.body !== undefined || init.raw !== undefined) headers['content-type'] ??= 'application/json';
  return exports.default.fetch(`https://edge.test${path}`, {
    method: init.method ?? (init.body !== undefined || init.raw !== undefined ? 'POST' : 'GET'),
    headers,
    body: init.raw ?? (init.body !== undefined ? JSON.stringify(init.body) : undefined),
  });
}

const timings = (response: Response) =>
  Object.fromEntries((response.headers.get('server-timing') ?? '').split(',').map((m) => [m.split(';')[0]!.trim(), m]));

describe('edge API in workerd', () => {
  it('answers a short completion at the edge with the shipped model (greedy, the same text as on Node)', async () => {
    const response = await call('/v1/completions', {
      body: { model: 'deciserve-mamba', prompt: 'And God said', max_tokens: 16, temperature: 0 },
    });
    const body = (await response.json()) as {
      choices: { text: string; finish_reason: string }[];
      usage: { completion_tokens: number };
      deciserve: { ran_on: string; engine: string };
    };
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(response.headers.get('x-deciserve-ran-on')).toBe('edge');
    expect(response.headers.get('x-request-id')).toMatch(/^[\w-]+$/);
    expect(Object.keys(timings(response))).toEqual(
      expect.arrayContaining(['tokenize', 'route', 'load', 'prefill', 'decode', 'total']),
    );
    // EDGE_ENGINE's default: mamba/wasm's SIMD engine prefills and decodes (#16)
    expect(body.deciserve).toMatchObject({ ran_on: 'edge', engine: 'wasm-simd-fp32' });
    expect(body.usage.completion_tokens).toBe(16);
    expect(body.choices[0]!.text).toBe(' unto him, Get thee up, and go down with thee. And he'); // deciserve generate "And God said" --max-tokens 16 (Node, reference and onnx; run 4)
  });

  it('streams server-sent events that add up to the completion', async () => {
    const response = await call('/v1/completions', {
      body: {
        model: 'deciserve-mamba',
        prompt: 'And God said',
        max_tokens: 16,
        temperature: 0,
        stream: true,
        stop: ' up',
      },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);
    const events = (await response.text())
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => l.slice(6));
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events
      .slice(0, -1)
      .map((e) => JSON.parse(e) as { choices: { text: string; finish_reason: string | null }[] });
    expect(chunks.map((c) => c.choices[0]!.text).join('')).toBe(' unto him, Get thee');
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('stop');
  });

  it('streams a chat completion: the role first, then the reply, usage last', async () => {
    const messages = [{ role: 'user', content: 'And God said' }];
    const response = await call('/v1/chat/completions', {
      body: {
        model: 'deciserve-mamba',
        messages,
        max_tokens: 8,
        temperature: 0,
        stream: true,
        stream_options: { include_usage: true },
      },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-deciserve-ran-on')).toBe('edge');
    const events = (await response.text())
      .split('\n')
      .filter((l) => l.startsWith('data: '))
      .map((l) => l.slice(6));
    expect(events.at(-1)).toBe('[DONE]');
    type ChatChunk = {
      object: string;
      choices: { delta: { role?: string; content?: string } }[];
      usage?: { completion_tokens: number };
    };
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e) as ChatChunk);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(chunks.at(-1)!.usage!.completion_tokens).toBe(8);
    const plain = await call('/v1/chat/completions', {
      body: { model: 'deciserve-mamba', messages, max_tokens: 8, temperature: 0 },
    });
    const body = (await plain.json()) as { choices: { message: { content: string } }[] };
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(body.choices[0]!.message.content);
  });

  it('scores a continuation at the edge', async () => {
    const response = await call('/v1/score', {
      body: { model: 'deciserve-mamba', prompt: 'And God said', continuation: ', Let there be light' },
    });
    const body = (await response.json()) as { token_strings: string[]; logprobs: number[]; perplexity: number };
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(body.token_strings.join('')).toBe(', Let there be light');
    expect(body.logprobs.every((l) => l < 0)).toBe(true);
    expect(body.perplexity).toBeGreaterThan(1);
  });

  it('runs a prompt over the training length as a runner job (Redis + radosgw) and returns it as if synchronous', async () => {
    const prompt = 'In the beginning God created the heaven and the earth. '.repeat(760); // > 8,192 tokens (run 4's training length)
    const response = await call('/v1/completions', {
      body: { model: 'deciserve-mamba', prompt, max_tokens: 4, temperature: 0 },
    });
    type Body = {
      choices: { text: string }[];
      usage: { prompt_tokens: number; completion_tokens: number };
      deciserve: { ran_on: string; job_id: string; decimation: { config: unknown; kept: { tokens: number }[] } };
    };
    const body = (await response.json()) as Body;
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(response.headers.get('x-deciserve-ran-on')).toBe('runner');
    expect(timings(response).route).toMatch(/runner: \d+ prompt tokens > 8192 at the edge/);
    const jobId = response.headers.get('x-deciserve-job-id')!;
    expect(jobId).toMatch(/^job_[a-z0-9]{26}$/);
    expect(body.usage).toMatchObject({ completion_tokens: 4 });
    expect(body.usage.prompt_tokens).toBeGreaterThan(8192);
    expect(body.deciserve).toMatchObject({ ran_on: 'runner', job_id: jobId });
    // decimation "auto" turned DeciMamba on above the training length (L_base 8000 at this length: ~1K tokens dropped).
    expect(body.deciserve.decimation.config).toMatchObject({ layers: [expect.any(Number)], lBase: expect.any(Number) });
    // The job stays readable through the edge, its result in radosgw behind a presigned URL.
    const job = (await (await call(`/v1/jobs/${jobId}`)).json()) as { status: string; result_url: string };
    expect(job.status).toBe('succeeded');
    const stored = (await (await fetch(job.result_url)).json()) as Body;
    expect(stored.choices[0]!.text).toBe(body.choices[0]!.text);
  });

  it('refuses bad keys, bad bodies and unknown models with OpenAI-shaped 4xx errors', async () => {
    const cases: [Promise<Response>, number, string][] = [
      [call('/v1/models', { key: null }), 401, 'missing_api_key'],
      [call('/v1/models', { key: 'not-a-valid-key-0123456789' }), 401, 'invalid_api_key'],
      [call('/v1/completions', { raw: '{"model":' }), 400, 'invalid_json'],
      [call('/v1/completions', { raw: new Uint8Array([0x7b, 0x22, 0xff, 0x22, 0x7d]) }), 400, 'invalid_encoding'],
      [call('/v1/completions', { body: { model: 'gpt-4', prompt: 'x' } }), 404, 'model_not_found'],
      [
        call('/v1/completions', { body: { model: 'deciserve-mamba', prompt: 'x', max_tokens: 1e12 } }),
        400,
        'value_too_large',
      ],
      [
        call('/v1/completions', {
          body: { model: 'deciserve-mamba', prompt: 'x' },
          headers: { 'content-type': 'text/plain' },
        }),
        415,
        'unsupported_media_type',
      ],
    ];
    for (const [pending, status, code] of cases) {
      const response = await pending;
      const body = (await response.json()) as { error: { code: string; type: string; message: string } };
      expect([response.status, body.error.code]).toEqual([status, code]);
      expect(body.error.message.length).toBeGreaterThan(0);
    }
    expect((await call('/healthz', { key: null })).status).toBe(200);
  });

  it('limits requests per API key through the Workers rate-limit binding', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 24; i++) statuses.push((await call('/v1/models', { key: RATE_KEY })).status);
    expect(statuses.slice(0, 20).every((s) => s === 200)).toBe(true);
    expect(statuses.at(-1)).toBe(429);
    expect((await call('/v1/models')).status).toBe(200); // another key is not affected
  });
});
