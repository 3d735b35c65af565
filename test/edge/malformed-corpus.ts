// Malformed requests to the edge API: bad JSON and UTF-8, wrong types field by field, oversize bodies and prompts,
// absurd max_tokens, unknown models, unknown fields, wrong content types and methods, bad job ids and headers, token
// bombs, Authorization abuse and unicode where it does not belong.
// Every one must be answered with a 4xx OpenAI-shaped error. Limits assumed (edge-stack.test.ts sets them): model
// "tiny", MAX_BODY_BYTES 256 KiB, MAX_PROMPT_TOKENS 20000, MAX_NEW_TOKENS 256.
import { VALID, WRONG } from './malformed-fields.ts';

export interface MalformedRequest {
  name: string;
  method?: string;
  path: string;
  body?: string | Uint8Array;
  headers?: Record<string, string>;
  /** Exact status when it matters; otherwise any 4xx. */
  expect?: number;
}

const encoder = new TextEncoder();
const bytes = (...parts: Array<string | number[]>) =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...encoder.encode(p)] : p)));

export function malformedRequests(): MalformedRequest[] {
  const out: MalformedRequest[] = [];
  const add = (name: string, path: string, body: unknown, extra: Partial<MalformedRequest> = {}) =>
    out.push({
      name,
      path,
      method: 'POST',
      body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
      ...extra,
    });

  const badJson = [
    '',
    ' ',
    '{',
    '}',
    '{"model":',
    '{"model":"tiny",}',
    "{'model':'tiny'}",
    '{"a":1}{"b":2}',
    'nul',
    'undefined',
    'NaN',
    '{"max_tokens":NaN}',
    '{"max_tokens":Infinity}',
    '{"prompt":"unterminated}',
    '{"prompt":"\\x41"}',
    '{"prompt":"\\u12"}',
    '{"prompt":"tab\there"}',
    '// comment\n{}',
    '{"a":01}',
    '[1,2,',
    '{"a" 1}',
    '\u0000',
    '['.repeat(5000) + ']'.repeat(5000),
    '{"a":'.repeat(3000) + '1' + '}'.repeat(3000),
    'true',
    'null',
    '0',
    '"string"',
    '[]',
    '[{"model":"tiny"}]',
    '{}',
    '<xml/>',
    'model=tiny&prompt=x',
    '\ufeff{bad',
    '{"prompt": "a"} trailing',
  ];
  for (const path of ['/v1/completions', '/v1/score', '/v1/jobs'])
    badJson.forEach((b, i) => add(`${path} bad json #${i}`, path, b, { expect: 400 }));

  const badUtf8: number[][] = [
    [0xff],
    [0xfe, 0xff],
    [0xc3, 0x28],
    [0xc0, 0xaf],
    [0xe0, 0x80, 0xaf],
    [0xed, 0xa0, 0x80],
    [0xe2, 0x82],
    [0xf0, 0x9f, 0x98],
    [0x80],
    [0xf4, 0x90, 0x80, 0x80],
  ];
  badUtf8.forEach((seq, i) => {
    add(`bad utf-8 alone #${i}`, '/v1/completions', bytes(seq), { expect: 400 });
    add(
      `bad utf-8 in a completion prompt #${i}`,
      '/v1/completions',
      bytes('{"model":"tiny","prompt":"ab', seq, 'cd"}'),
      { expect: 400 },
    );
    add(`bad utf-8 in a score prompt #${i}`, '/v1/score', bytes('{"model":"tiny","prompt":"ab', seq, 'cd"}'), {
      expect: 400,
    });
  });

  for (const { field, paths, values } of WRONG) {
    for (const path of paths) {
      values.forEach((value, i) => {
        // JSON.stringify drops a __proto__ key given as an object literal key; write it into the text instead.
        const body =
          field === '__proto__'
            ? JSON.stringify(VALID[path]).replace(/^\{/, `{"__proto__":${JSON.stringify(value)},`)
            : { ...VALID[path], [field]: value };
        add(`${path} ${field}=${JSON.stringify(value)?.slice(0, 40)} #${i}`, path, body);
      });
    }
  }
  for (const path of Object.keys(VALID) as Array<keyof typeof VALID>) {
    for (const field of ['model', path === '/v1/chat/completions' ? 'messages' : 'prompt']) {
      const { [field as 'model']: _dropped, ...rest } = VALID[path];
      add(`${path} missing ${field}`, path, rest, { expect: 400 });
    }
  }
  add(
    'stream with logprobs',
    '/v1/completions',
    { ...VALID['/v1/completions'], stream: true, logprobs: 1 },
    { expect: 400 },
  );
  add('score of a single token', '/v1/score', { model: 'tiny', prompt: 'a' }, { expect: 400 });
  add('score job of a single token', '/v1/jobs', { type: 'score', model: 'tiny', prompt: 'a' }, { expect: 400 });

  for (const model of ['gpt-4', 'tiny ', 'TINY', 'mamba-2.8b', '../tiny', 'deciserve-mamba']) {
    for (const path of Object.keys(VALID) as Array<keyof typeof VALID>)
      add(`${path} unknown model ${model}`, path, { ...VALID[path], model }, { expect: 404 });
  }

  add(
    'body over the byte limit',
    '/v1/completions',
    { model: 'tiny', prompt: 'a'.repeat(300 * 1024) },
    { expect: 413 },
  );
  add(
    'score body over the byte limit',
    '/v1/score',
    { model: 'tiny', prompt: 'a'.repeat(300 * 1024) },
    { expect: 413 },
  );
  add(
    'job body over the byte limit',
    '/v1/jobs',
    { type: 'completion', model: 'tiny', prompt: 'a'.repeat(300 * 1024) },
    { expect: 413 },
  );
  add('prompt over the token limit', '/v1/completions', { model: 'tiny', prompt: 'q'.repeat(60_000) }, { expect: 400 });
  add(
    'score over the token limit',
    '/v1/score',
    { model: 'tiny', prompt: 'q', continuation: 'z'.repeat(60_000) },
    { expect: 400 },
  );
  add(
    'job over the token limit',
    '/v1/jobs',
    { type: 'completion', model: 'tiny', prompt: 'q'.repeat(60_000) },
    { expect: 400 },
  );
  for (const n of [257, 10_000, 1e6, 2 ** 31, 2 ** 63])
    add(`absurd max_tokens ${n}`, '/v1/completions', { model: 'tiny', prompt: 'x', max_tokens: n }, { expect: 400 });

  for (const ct of [
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data',
    'application/json; charset=latin1',
    'application/jsonx',
    '',
  ]) {
    add(`content-type ${ct || '(none)'}`, '/v1/completions', VALID['/v1/completions'], {
      headers: { 'content-type': ct },
      expect: 415,
    });
  }
  for (const key of ['', 'has space', 'x'.repeat(300), 'tab\tkey']) {
    add(`Idempotency-Key ${JSON.stringify(key.slice(0, 8))}`, '/v1/jobs', VALID['/v1/jobs'], {
      headers: { 'idempotency-key': key },
    });
  }

  // Token bombs (issue #13), under the byte limit: refused before the tokenizing they would cost.
  const bombs: Record<string, string> = {
    digits: '7'.repeat(200_000),
    'combining accents': 'e' + '\u0301'.repeat(100_000),
    'accented words': 'e\u0301 '.repeat(50_000),
    'one long word': 'ab'.repeat(60_000),
    'emoji run': '\u{1F600}'.repeat(40_000),
    'zero-width joiners': 'a\u200d'.repeat(60_000),
  };
  for (const [kind, text] of Object.entries(bombs)) {
    add(
      `completion token bomb: ${kind}`,
      '/v1/completions',
      { ...VALID['/v1/completions'], prompt: text },
      { expect: 400 },
    );
    add(
      `chat token bomb: ${kind}`,
      '/v1/chat/completions',
      { ...VALID['/v1/chat/completions'], messages: [{ role: 'user', content: text }] },
      { expect: 400 },
    );
    add(
      `score token bomb: ${kind}`,
      '/v1/score',
      { model: 'tiny', prompt: 'context', continuation: text },
      { expect: 400 },
    );
    add(`job token bomb: ${kind}`, '/v1/jobs', { ...VALID['/v1/jobs'], prompt: text }, { expect: 400 });
  }

  // Header abuse: keys and content types an attacker might try.
  for (const auth of [
    '',
    'Bearer',
    'Bearer ',
    'Basic dGlueTp0aW55',
    'Bearer wrong-key-0123456789abcdef',
    'Token edge-test-key-0123456789abcdef',
    'Bearer edge-test-key-0123456789abcdef extra',
    'Bearer ' + 'k'.repeat(4096),
    'Bearer edge-test-key-0123456789abcde',
  ]) {
    add(`Authorization ${JSON.stringify(auth.slice(0, 24))}`, '/v1/completions', VALID['/v1/completions'], {
      headers: { authorization: auth },
      expect: 401,
    });
  }
  for (const ct of [
    'application/json, text/plain',
    'application/json; charset=utf-16',
    'application/json;;',
    'text/json',
    'application/*',
    'json',
    'application/json; boundary=x',
    'APPLICATION/XML',
  ]) {
    add(`content-type ${ct}`, '/v1/chat/completions', VALID['/v1/chat/completions'], {
      headers: { 'content-type': ct },
      expect: 415,
    });
  }

  // Unicode where it does not belong: in field names, model names, roles, enum values and ids.
  for (const [i, body] of [
    { ...VALID['/v1/completions'], 'm\u00f6del': 'tiny' },
    { ...VALID['/v1/completions'], 'max_tokens\u200b': 2 },
    { ...VALID['/v1/completions'], decimation: 'o\u0301n' },
    { ...VALID['/v1/completions'], decimation: '\uff4f\uff4e' },
    { ...VALID['/v1/completions'], stop: '' },
    { ...VALID['/v1/completions'], stop: ['\u{1F600}'.repeat(300)] },
    { ...VALID['/v1/chat/completions'], messages: [{ role: 'us\u0435r', content: 'cyrillic e in the role' }] },
    { ...VALID['/v1/chat/completions'], messages: [{ role: 'USER', content: 'x' }] },
    { ...VALID['/v1/jobs'], type: 'c\u043empletion' },
    { ...VALID['/v1/jobs'], webhook: { url: 'https://169.254.169.254/latest/meta-data/' } },
    { ...VALID['/v1/jobs'], webhook: { url: 'https://[::ffff:169.254.169.254]/hook' } },
    { ...VALID['/v1/jobs'], metadata: { ['k'.repeat(65)]: 'v' } },
    { ...VALID['/v1/jobs'], metadata: { '': 'empty key' } },
  ].entries()) {
    const path = 'messages' in body ? '/v1/chat/completions' : 'type' in body ? '/v1/jobs' : '/v1/completions';
    add(`unicode misuse #${i}`, path, body, { expect: 400 });
  }
  for (const model of ['t\u0131ny', 'tiny\u200b', '\uff54\uff49\uff4e\uff59', 'tiny\u0000']) {
    add(
      `unicode model ${JSON.stringify(model)}`,
      '/v1/completions',
      { ...VALID['/v1/completions'], model },
      { expect: 404 },
    );
  }

  for (const id of [
    'nope',
    'job_',
    'job_SHORT',
    'job_' + 'a'.repeat(27),
    '..%2F..%2Fetc',
    'job_aaaaaaaaaaaaaaaaaaaaaaaaa!',
    'job_aaaaaaaaaaaaaaaaaaaaaaaaaa',
  ]) {
    out.push({ name: `GET job ${id}`, method: 'GET', path: `/v1/jobs/${id}` });
    out.push({ name: `DELETE job ${id}`, method: 'DELETE', path: `/v1/jobs/${id}` });
  }
  for (const [method, path] of [
    ['GET', '/v1/completions'],
    ['PUT', '/v1/completions'],
    ['GET', '/v1/score'],
    ['PATCH', '/v1/jobs'],
    ['POST', '/v1/models'],
    ['GET', '/v1/chat/completions'],
    ['POST', '/v1/chat/completions'],
    ['GET', '/v1/models/gpt-4'],
    ['GET', '/v2/completions'],
  ] as const) {
    out.push({
      name: `${method} ${path}`,
      method,
      path,
      body: method === 'GET' ? undefined : JSON.stringify(VALID['/v1/completions']),
      expect: path === '/v1/models/gpt-4' ? 404 : undefined,
    });
  }
  return out;
}
