// The edge API on Node (@hono/node-server) with the shipped model and no runner: the official `openai` client
// (plain and streaming), logprobs/echo, scoring, auth failures, routing without a runner, OpenAPI/docs, CORS and
// the in-process rate limiter.
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEdgeModel } from '../../worker/model/build.ts';
import { createNodeEdgeApp } from '../../worker/node-server.ts';
import type { RunningEdge } from '../../worker/node-server.ts';
import { EDGE_KEY, expectError, get, post, serverTiming, startEdge } from './helpers.ts';

let edge: RunningEdge;
let modelDir: string;
let openai: OpenAI;
const model = 'deciserve-mamba';

beforeAll(async () => {
  ({ dir: modelDir } = await buildEdgeModel());
  edge = await startEdge(modelDir, {});
  openai = new OpenAI({ apiKey: EDGE_KEY, baseURL: `${edge.url}/v1`, maxRetries: 0 });
}, 120_000);

afterAll(async () => {
  await edge?.close();
});

describe('OpenAI client against the edge on Node', () => {
  let greedy = '';

  it('answers a short completion at the edge, saying where it ran and how long each stage took', async () => {
    const { data, response } = await openai.completions
      .create({ model, prompt: 'And God said', max_tokens: 12, temperature: 0 })
      .withResponse();
    greedy = data.choices[0]!.text;
    expect(greedy.length).toBeGreaterThan(0);
    expect(data.usage).toEqual({ prompt_tokens: 3, completion_tokens: 12, total_tokens: 15 });
    expect(response.headers.get('x-deciserve-ran-on')).toBe('edge');
    expect(Object.keys(serverTiming(response))).toEqual(
      expect.arrayContaining(['tokenize', 'route', 'load', 'prefill', 'decode', 'total']),
    );
  });

  it("runs on mamba/wasm's SIMD engine by default; EDGE_ENGINE=onnx (ORT) gives the same greedy text", async () => {
    const body = { model, prompt: 'And God said', max_tokens: 12, temperature: 0 };
    const simd = (await openai.completions.create(body)) as unknown as { deciserve: { engine: string } };
    expect(simd.deciserve.engine).toBe('wasm-simd-fp32');
    const ortEdge = await startEdge(modelDir, { EDGE_ENGINE: 'onnx' });
    try {
      const ort = new OpenAI({ apiKey: EDGE_KEY, baseURL: `${ortEdge.url}/v1`, maxRetries: 0 });
      const data = (await ort.completions.create(body)) as unknown as OpenAI.Completion & {
        deciserve: { engine: string };
      };
      expect(data.deciserve.engine).not.toMatch(/wasm-simd/);
      expect(data.choices[0]!.text).toBe(greedy);
    } finally {
      await ortEdge.close();
    }
  });

  it('streams the same text through the openai client', async () => {
    const stream = await openai.completions.create({
      model,
      prompt: 'And God said',
      max_tokens: 12,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const pieces: string[] = [];
    let finish: string | null = null;
    let usage: unknown = null;
    for await (const chunk of stream) {
      if (chunk.choices[0]) {
        pieces.push(chunk.choices[0].text);
        finish = chunk.choices[0].finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(pieces.length).toBeGreaterThan(2); // token by token, not one blob
    expect(pieces.join('')).toBe(greedy);
    expect(finish).toBe('length');
    expect(usage).toEqual({ prompt_tokens: 3, completion_tokens: 12, total_tokens: 15 });
  });

  it('stops before a stop string, streamed or not', async () => {
    const stop = greedy.slice(4, 9);
    const plain = await openai.completions.create({
      model,
      prompt: 'And God said',
      max_tokens: 12,
      temperature: 0,
      stop,
    });
    expect(plain.choices[0]!.text).toBe(greedy.slice(0, greedy.indexOf(stop)));
    expect(plain.choices[0]!.finish_reason).toBe('stop');
    const stream = await openai.completions.create({
      model,
      prompt: 'And God said',
      max_tokens: 12,
      temperature: 0,
      stop,
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(text).toBe(plain.choices[0]!.text);
  });

  it('reproduces a sampled completion from its seed', async () => {
    const a = await openai.completions.create({
      model,
      prompt: 'In the beginning',
      max_tokens: 8,
      temperature: 1,
      top_p: 0.9,
      seed: 42,
    });
    const b = await openai.completions.create({
      model,
      prompt: 'In the beginning',
      max_tokens: 8,
      temperature: 1,
      top_p: 0.9,
      seed: 42,
    });
    expect(b.choices[0]!.text).toBe(a.choices[0]!.text);
    expect((a as unknown as { deciserve: { seed: number } }).deciserve.seed).toBe(42);
  });

  it('returns echo and logprobs that agree with /v1/score', async () => {
    const data = await openai.completions.create({
      model,
      prompt: 'And God said',
      max_tokens: 3,
      temperature: 0,
      echo: true,
      logprobs: 2,
    });
    const choice = data.choices[0]!;
    const logprobs = choice.logprobs!;
    expect(choice.text.startsWith('And God said')).toBe(true);
    expect(logprobs.tokens!.join('')).toBe(choice.text);
    expect(logprobs.token_logprobs![0]).toBeNull();
    expect(logprobs.top_logprobs!.slice(3).every((top) => Object.keys(top!).length === 2)).toBe(true);
    const score = (await (await post(edge, '/v1/score', { model, prompt: 'And God said' })).json()) as {
      logprobs: number[];
    };
    score.logprobs.forEach((lp, i) => expect(logprobs.token_logprobs![i + 1]).toBeCloseTo(lp, 4));
  });

  it('scores a continuation given a prompt', async () => {
    const response = await post(edge, '/v1/score', {
      model,
      prompt: 'And God said',
      continuation: ', Let there be light',
    });
    const body = (await response.json()) as {
      tokens: number[];
      token_strings: string[];
      logprobs: number[];
      nll: number;
      perplexity: number;
    };
    expect(response.status).toBe(200);
    expect(response.headers.get('x-deciserve-ran-on')).toBe('edge');
    expect(body.token_strings.join('')).toBe(', Let there be light');
    expect(body.nll).toBeCloseTo(-body.logprobs.reduce((a, b) => a + b, 0), 6);
    expect(body.perplexity).toBeCloseTo(Math.exp(body.nll / body.tokens.length), 3);
  });

  it('lists the model with its limits', async () => {
    const { data: models, response } = await openai.models.list().withResponse();
    expect(response.headers.get('x-deciserve-ran-on')).toBe('edge'); // every answer says where it was made
    expect(models.data.map((m) => m.id)).toEqual([model]);
    const card = JSON.parse(readFileSync('models/deciserve-mamba/deciserve.json', 'utf8'));
    expect((models.data[0] as unknown as { deciserve: { training_length: number } }).deciserve.training_length).toBe(
      card.trainingLength,
    );
  });
});

describe('DeciMamba at the edge', () => {
  const text = 'And God said, Let there be light: and there was light. '.repeat(20);
  const decimated = (prompt: string, maxTokens: number, lBase: number) =>
    post(edge, '/v1/completions', {
      model,
      prompt,
      max_tokens: maxTokens,
      temperature: 0,
      decimation: 'on',
      decimation_params: { l_base: lBase },
    });

  it('decimates a short prompt on request and reports what each decimating layer kept', async () => {
    const response = await decimated(text, 2, 64);
    const body = (await response.json()) as {
      usage: { prompt_tokens: number };
      deciserve: { decimation: { config: { layers: number[] }; kept: { layer: number; tokens: number }[] } };
    };
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(response.headers.get('x-deciserve-ran-on')).toBe('edge');
    expect(body.deciserve.decimation.config.layers).toEqual([11]); // deciserve.json's default layer
    expect(body.deciserve.decimation.kept).toEqual([{ layer: 11, tokens: 65 }]); // L_base 64 scored + the protected last token
    expect(body.deciserve.decimation).toMatchObject({ applied: true });
    expect(body.usage.prompt_tokens).toBeGreaterThan(200);
  });

  it('runs a DeciMamba prompt past the old 2,048-token cap at the edge (the WASM engine holds [L, d_model] only)', async () => {
    const long = 'And God said, Let there be light: and there was light. '.repeat(300); // ~4K tokens
    const response = await decimated(long, 1, 1024);
    const body = (await response.json()) as {
      usage: { prompt_tokens: number };
      deciserve: { decimation: { kept: { layer: number; tokens: number }[] } };
    };
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect(body.usage.prompt_tokens).toBeGreaterThan(2048);
    expect(response.headers.get('x-deciserve-ran-on')).toBe('edge');
    expect(body.deciserve.decimation.kept).toEqual([{ layer: 11, tokens: 1025 }]);
  });

  it('says when decimation was on but dropped nothing (a whole-prompt score protects every position)', async () => {
    type Report = {
      deciserve: { decimation: { config: object | null; kept: { tokens: number }[]; applied: boolean } };
      usage: { prompt_tokens: number };
    };
    const whole = (await (
      await post(edge, '/v1/score', { model, prompt: text, decimation: 'on', decimation_params: { l_base: 64 } })
    ).json()) as Report;
    expect(whole.deciserve.decimation.config).not.toBeNull();
    expect(whole.deciserve.decimation.kept.every((k) => k.tokens === whole.usage.prompt_tokens)).toBe(true);
    expect(whole.deciserve.decimation.applied).toBe(false);
    const span = (await (
      await post(edge, '/v1/score', {
        model,
        prompt: text,
        continuation: ' And God saw',
        decimation: 'on',
        decimation_params: { l_base: 64 },
      })
    ).json()) as Report;
    expect(span.deciserve.decimation.applied).toBe(true);
  });

  it('runs DeciMamba prompts up to the training length on the WASM engine; ORT keeps them to 1,024', async () => {
    const body = { model, prompt: text.repeat(5), max_tokens: 2, decimation: 'on' }; // ~1,300 tokens
    const response = await post(edge, '/v1/completions', body);
    expect(response.status).toBe(200);
    expect(response.headers.get('x-deciserve-ran-on')).toBe('edge');
    const ortEdge = await startEdge(modelDir, { EDGE_ENGINE: 'onnx' });
    try {
      const refused = await post(ortEdge, '/v1/completions', body);
      expect(serverTiming(refused).route).toMatch(/> 1024 with DeciMamba at the edge/);
      await expectError(refused, 400, 'context_length_exceeded');
    } finally {
      await ortEdge.close();
    }
  });
});

describe('auth', () => {
  it('raises AuthenticationError in the openai client for a wrong key', async () => {
    const wrong = new OpenAI({ apiKey: 'wrong-key-0123456789abcdef', baseURL: `${edge.url}/v1`, maxRetries: 0 });
    await expect(wrong.completions.create({ model, prompt: 'x', max_tokens: 1 })).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    );
  });

  it('refuses missing, malformed and near-miss keys on every route but /healthz', async () => {
    const near = EDGE_KEY.slice(0, -1) + (EDGE_KEY.endsWith('f') ? 'e' : 'f');
    const cases: Array<[Record<string, string>, string]> = [
      [{}, 'missing_api_key'],
      [{ authorization: '' }, 'missing_api_key'],
      [{ authorization: `Basic ${btoa('user:pass')}` }, 'invalid_authorization_header'],
      [{ authorization: 'Bearer' }, 'invalid_authorization_header'],
      [{ authorization: 'Bearer a b' }, 'invalid_authorization_header'],
      [{ authorization: `Bearer ${near}` }, 'invalid_api_key'],
      [{ authorization: `Bearer ${EDGE_KEY}x` }, 'invalid_api_key'],
      [{ authorization: `Bearer ${EDGE_KEY.slice(0, 8)}` }, 'invalid_api_key'],
      [{ 'x-api-key': EDGE_KEY }, 'missing_api_key'],
    ];
    for (const path of ['/v1/models', '/v1/jobs/job_aaaaaaaaaaaaaaaaaaaaaaaaaa', '/openapi.json', '/docs']) {
      for (const [headers, code] of cases) await expectError(await fetch(edge.url + path, { headers }), 401, code);
    }
    await expectError(
      await fetch(`${edge.url}/v1/completions`, {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
      }),
      401,
      'missing_api_key',
    );
    expect((await fetch(`${edge.url}/healthz`)).status).toBe(200);
  });
});

describe('routing without a runner', () => {
  // ~13K tokens: over the shipped model's training length (8,192 since run 4), so the edge hands it on
  const overTrainLen = 'And God said, Let there be light: and there was light. '.repeat(1000);
  const trainLen = JSON.parse(readFileSync('models/deciserve-mamba/deciserve.json', 'utf8')).trainingLength as number;

  it('refuses a prompt over the training length as context_length_exceeded (400, not 5xx)', async () => {
    const prompt = overTrainLen;
    const response = await post(edge, '/v1/completions', { model, prompt, max_tokens: 4 });
    expect(response.headers.get('x-deciserve-ran-on')).toBe('runner');
    expect(serverTiming(response).route).toMatch(new RegExp(`> ${trainLen} at the edge`));
    await expectError(response, 400, 'context_length_exceeded');
  });

  it('sends work over the CPU budget to the runner even when the prompt is short', async () => {
    const response = await post(edge, '/v1/completions', { model, prompt: 'And', max_tokens: 4000 });
    expect(serverTiming(response).route).toMatch(/estimated \d+ ms CPU > edge budget 10000 ms/);
    await expectError(response, 400, 'context_length_exceeded');
  });

  it('answers 503 with Retry-After when a runner is configured but nothing listens there', async () => {
    const unreachable = await startEdge(modelDir, {
      RUNNER_URL: 'http://127.0.0.1:9',
      RUNNER_HMAC_SECRET: 'edge-node-secret-0123456789',
    });
    try {
      const response = await post(unreachable, '/v1/completions', { model, prompt: overTrainLen, max_tokens: 4 });
      expect(response.headers.get('x-deciserve-ran-on')).toBe('runner');
      expect(response.headers.get('retry-after')).toBeTruthy();
      await expectError(response, 503, 'runner_unavailable');
    } finally {
      await unreachable.close();
    }
  });
});

describe('documents, CORS and rate limits', () => {
  it('serves an OpenAPI 3.1 document covering every route, and the docs page', async () => {
    const doc = (await (await get(edge, '/openapi.json')).json()) as {
      openapi: string;
      paths: Record<string, object>;
      components: { schemas: object };
    };
    expect(doc.openapi).toBe('3.1.0');
    expect(Object.keys(doc.paths).sort()).toEqual([
      '/healthz',
      '/v1/chat/completions',
      '/v1/completions',
      '/v1/jobs',
      '/v1/jobs/{id}',
      '/v1/models',
      '/v1/models/{model}',
      '/v1/score',
    ]);
    expect(Object.keys(doc.components.schemas)).toEqual(
      expect.arrayContaining([
        'CompletionRequest',
        'Completion',
        'ChatCompletionRequest',
        'ChatCompletion',
        'ScoreRequest',
        'Score',
        'JobRequest',
        'Job',
        'Error',
      ]),
    );
    const page = await get(edge, '/docs');
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toMatch(/SwaggerUIBundle[\s\S]*\/openapi\.json/);
  });

  it('answers CORS preflights without a key and exposes the timing headers', async () => {
    const response = await fetch(`${edge.url}/v1/completions`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get('access-control-allow-origin')).toBe('*');
    expect(response.headers.get('access-control-expose-headers')).toMatch(/Server-Timing.*x-deciserve-ran-on/);
  });

  it('limits requests per API key (in-process limiter on Node)', async () => {
    const app = createNodeEdgeApp(
      { API_KEYS: `${EDGE_KEY},key-two-0123456789abcdef`, RATE_LIMIT_PER_MINUTE: '3' },
      modelDir,
    );
    const call = (key: string) => app.request('/v1/models', { headers: { authorization: `Bearer ${key}` } });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await call(EDGE_KEY)).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const limited = await call(EDGE_KEY);
    expect(limited.headers.get('retry-after')).toBe('60');
    await expectError(limited, 429, 'rate_limit_exceeded');
    expect((await call('key-two-0123456789abcdef')).status).toBe(200);
  });
});
