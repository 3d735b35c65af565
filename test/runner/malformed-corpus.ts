// Malformed intake requests (bad JSON, bad UTF-8, wrong types, oversize, absurd values, unknown model, bad headers).
// The intake-only test runner has: model "tiny" (2 layers), max body 256 KiB, max prompt 20000 tokens, max_tokens ≤ 256.
export interface MalformedRequest {
  name: string;
  body?: string | Uint8Array;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  unsigned?: boolean;
  /** Exact status when it matters; otherwise any 4xx. */
  expect?: number;
}

const valid = { type: 'completion', model: 'tiny', prompt: 'hello', max_tokens: 4 };
const bytes = (...parts: Array<string | number[]>) =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...new TextEncoder().encode(p)] : p)));

/** decimation_params the edge and the runner must both refuse (test/edge/malformed-fields.ts uses it too). */
export const BAD_DECIMATION_PARAMS: unknown[] = [
  { layers: [] },
  { layers: [99] },
  { layers: [1, 0] },
  { layers: [-1] },
  { beta: 0 },
  { beta: 2 },
  { l_base: 0 },
  { min_seq_len: -1 },
  { foo: 1 },
  'on',
  [],
  { layers: ['1'] },
];

export function malformedRequests(): MalformedRequest[] {
  const out: MalformedRequest[] = [];
  const add = (name: string, body: unknown, extra: Partial<MalformedRequest> = {}) =>
    out.push({
      name,
      body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
      ...extra,
    });

  // Not JSON at all, or broken JSON.
  const badJson = [
    '',
    ' ',
    '{',
    '}',
    '{"type":',
    '{"type":"completion",}',
    "{'type':'completion'}",
    '{"a":1}{"b":2}',
    'nul',
    'undefined',
    'NaN',
    '{"max_tokens":NaN}',
    '{"max_tokens":Infinity}',
    '{"max_tokens":-Infinity}',
    '{"prompt":"unterminated}',
    '{"prompt":"\\x41"}',
    '{"prompt":"\\u12"}',
    '{"prompt":"tab\there"}',
    '// comment\n{}',
    '{"a":01}',
    '[1,2,',
    '{"a" 1}',
    '{"a":1,,"b":2}',
    '\u0000',
    '['.repeat(5000) + ']'.repeat(5000),
    '{"a":'.repeat(3000) + '1' + '}'.repeat(3000),
    'true',
    'false',
    'null',
    '0',
    '"string"',
    '[]',
    '[{"type":"completion"}]',
    '{}',
    '{"":""}',
    '<xml/>',
    'type=completion&model=tiny',
    '\ufeff{bad',
    '{"prompt": "a"} trailing',
    '0x10',
  ];
  badJson.forEach((b, i) => add(`bad json #${i}`, b, { expect: 400 }));

  // Bytes that are not UTF-8, alone and inside otherwise valid JSON strings.
  const badUtf8: number[][] = [
    [0xff],
    [0xfe, 0xff],
    [0xc3, 0x28],
    [0xc0, 0xaf],
    [0xe0, 0x80, 0xaf],
    [0xed, 0xa0, 0x80],
    [0xed, 0xbf, 0xbf],
    [0xe2, 0x82],
    [0xf0, 0x9f, 0x98],
    [0xf8, 0x88, 0x80, 0x80, 0x80],
    [0x80],
    [0xbf],
    [0xf4, 0x90, 0x80, 0x80],
    [0xc1, 0xbf],
  ];
  badUtf8.forEach((seq, i) => {
    out.push({ name: `bad utf-8 alone #${i}`, body: bytes(seq), expect: 400 });
    out.push({
      name: `bad utf-8 in prompt #${i}`,
      body: bytes('{"type":"completion","model":"tiny","prompt":"ab', seq, 'cd","max_tokens":4}'),
      expect: 400,
    });
  });

  // Wrong types and values, field by field.
  const wrong: Record<string, unknown[]> = {
    type: [1, null, 'chat', '', ['completion'], { k: 1 }, 'COMPLETION', true],
    model: [1, '', null, 'x'.repeat(300), ['tiny'], {}, false],
    prompt: [1, '', null, [], {}, ['a', 'b'], true, 1.5],
    max_tokens: [-1, 1.5, '16', 1e9, 257, null, true, 1e308, -1e308, [4], {}, 2 ** 53],
    temperature: [-1, 3, '0.5', null, [], 1e10],
    top_p: [0, 2, -1, '1', null],
    top_k: [-1, 0.5, 'a', 1e9],
    seed: [-1, 2 ** 33, 1.5, '7', null],
    stop: [1, [1], ['a', 'b', 'c', 'd', 'e'], '', [''], 'x'.repeat(300), null, {}],
    decimation: ['maybe', 1, {}, null, true, 'ON'],
    decimation_params: [...BAD_DECIMATION_PARAMS, null],
    protect: [0, -1, 1.5, '2', null],
    priority: [0, 11, -5, 1.5, 'high', null],
    webhook: [
      { url: 'ftp://example.com/x' },
      { url: 'not a url' },
      'http://example.com',
      { url: 1 },
      { url: 'http://x/' + 'a'.repeat(3000) },
      {},
      { url: 'http://x', extra: 1 },
      null,
    ],
    metadata: [
      { a: 1 },
      Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])),
      [],
      'meta',
      { '': 'v' },
      { k: 'v'.repeat(600) },
      null,
    ],
    continuation: ['x', 1, ''],
    unknown_field: [1, 'x'],
  };
  for (const [field, values] of Object.entries(wrong)) {
    values.forEach((value, i) => add(`field ${field} #${i}`, { ...valid, [field]: value }));
  }
  for (const field of ['type', 'model', 'prompt']) {
    const { [field]: _dropped, ...rest } = valid as Record<string, unknown>;
    add(`missing ${field}`, rest, { expect: 400 });
  }
  add(
    'score with an empty continuation',
    { type: 'score', model: 'tiny', prompt: 'hi', continuation: '' },
    { expect: 400 },
  );
  add('score of a single token', { type: 'score', model: 'tiny', prompt: 'a' }, { expect: 400 });

  // Unknown model.
  for (const model of ['gpt-4', 'tiny ', 'TINY', 'mamba-2.8b', '../tiny'])
    add(`unknown model ${model}`, { ...valid, model }, { expect: 404 });

  // Oversize: body over the byte limit, prompt over the token limit, absurd max_tokens.
  add('body over the byte limit', { ...valid, prompt: 'a'.repeat(300 * 1024) }, { expect: 413 });
  add('prompt over the token limit', { ...valid, prompt: 'q'.repeat(60_000) }, { expect: 400 });
  add(
    'continuation over the token limit',
    { type: 'score', model: 'tiny', prompt: 'q', continuation: 'z'.repeat(60_000) },
    { expect: 400 },
  );
  for (const n of [257, 10_000, 1e6, 2 ** 31, 2 ** 63])
    add(`absurd max_tokens ${n}`, { ...valid, max_tokens: n }, { expect: 400 });

  // Headers.
  for (const ct of [
    'text/plain',
    'application/x-www-form-urlencoded',
    'multipart/form-data',
    'application/json; charset=latin1',
    'application/jsonx',
  ]) {
    add(`content-type ${ct}`, valid, { headers: { 'content-type': ct }, expect: 415 });
  }
  for (const key of ['has space', 'x'.repeat(256), 'cl\u00e9', '', 'tab\tkey']) {
    add(`bad Idempotency-Key ${JSON.stringify(key).slice(0, 20)}`, valid, {
      headers: { 'idempotency-key': key },
      expect: 400,
    });
  }

  // Routes and methods that do not exist, and ids that are not job ids.
  out.push({ name: 'PUT /jobs', method: 'PUT', body: JSON.stringify(valid), expect: 404 });
  out.push({ name: 'PATCH /jobs/x', method: 'PATCH', path: '/jobs/x', body: '{}', expect: 404 });
  out.push({ name: 'GET /nothing', method: 'GET', path: '/nothing', unsigned: true, expect: 404 });
  for (const id of ['x', 'job_', 'job_AAAAAAAAAAAAAAAAAAAAAAAAAA', '..%2F..%2Fetc', 'job_aaaaaaaaaaaaaaaaaaaaaaaaaa']) {
    out.push({ name: `GET /jobs/${id}`, method: 'GET', path: `/jobs/${id}`, expect: 404 });
  }

  // Unsigned garbage.
  for (const body of ['{}', 'garbage', JSON.stringify(valid)])
    out.push({ name: `unsigned ${body.slice(0, 10)}`, body, unsigned: true, expect: 401 });
  return out;
}
