// The field-by-field part of the edge's malformed-request corpus (malformed-corpus.ts): a valid body per endpoint,
// and the wrong values each field must be refused for, with the endpoints that have the field.
import { BAD_DECIMATION_PARAMS } from '../runner/malformed-corpus.ts';
export const VALID = {
  '/v1/completions': { model: 'tiny', prompt: 'hello', max_tokens: 2 },
  '/v1/chat/completions': { model: 'tiny', messages: [{ role: 'user', content: 'hello' }], max_tokens: 2 },
  '/v1/score': { model: 'tiny', prompt: 'hello there' },
  '/v1/jobs': { type: 'completion', model: 'tiny', prompt: 'hello', max_tokens: 2 },
} as const;

/** Wrong values per field; `paths` says which endpoints have the field. */
export const WRONG: Array<{ field: string; paths: Array<keyof typeof VALID>; values: unknown[] }> = [
  {
    field: 'model',
    paths: ['/v1/completions', '/v1/chat/completions', '/v1/score', '/v1/jobs'],
    values: [1, '', null, 'x'.repeat(300), ['tiny'], {}, false],
  },
  {
    field: 'prompt',
    paths: ['/v1/completions', '/v1/score', '/v1/jobs'],
    values: [1, '', null, [], {}, true, 1.5, [1, 2, 3]],
  },
  { field: 'prompt', paths: ['/v1/completions'], values: [['a', 'b'], [''], [['a']]] },
  {
    field: 'max_tokens',
    paths: ['/v1/completions', '/v1/chat/completions', '/v1/jobs'],
    values: [-1, 1.5, '16', 1e9, 257, true, 1e308, -1e308, [4], {}, 2 ** 53],
  },
  {
    field: 'temperature',
    paths: ['/v1/completions', '/v1/chat/completions', '/v1/jobs'],
    values: [-1, 3, '0.5', [], 1e10, {}],
  },
  { field: 'top_p', paths: ['/v1/completions', '/v1/chat/completions', '/v1/jobs'], values: [0, 2, -1, '1'] },
  { field: 'top_k', paths: ['/v1/completions', '/v1/chat/completions', '/v1/jobs'], values: [-1, 0.5, 'a', 1e9] },
  { field: 'seed', paths: ['/v1/completions', '/v1/chat/completions', '/v1/jobs'], values: [-1, 2 ** 33, 1.5, '7'] },
  {
    field: 'stop',
    paths: ['/v1/completions', '/v1/chat/completions', '/v1/jobs'],
    values: [1, [1], ['a', 'b', 'c', 'd', 'e'], '', [''], 'x'.repeat(300), {}],
  },
  { field: 'stream', paths: ['/v1/completions', '/v1/chat/completions'], values: ['yes', 1, [], {}] },
  {
    field: 'stream_options',
    paths: ['/v1/completions', '/v1/chat/completions'],
    values: ['x', { include_usage: 'yes' }, { other: true }],
  },
  { field: 'echo', paths: ['/v1/completions'], values: ['true', 1] },
  { field: 'logprobs', paths: ['/v1/completions', '/v1/chat/completions'], values: [-1, 6, 1.5, 'two', true] },
  { field: 'n', paths: ['/v1/completions', '/v1/chat/completions'], values: [2, 0, 'one'] },
  { field: 'best_of', paths: ['/v1/completions'], values: [3] },
  { field: 'presence_penalty', paths: ['/v1/completions', '/v1/chat/completions'], values: [0.5, 'x'] },
  { field: 'frequency_penalty', paths: ['/v1/completions', '/v1/chat/completions'], values: [-1] },
  { field: 'logit_bias', paths: ['/v1/completions', '/v1/chat/completions'], values: [{ '50256': -100 }, 'x', [1]] },
  { field: 'suffix', paths: ['/v1/completions'], values: ['tail', 1] },
  { field: 'user', paths: ['/v1/completions', '/v1/chat/completions'], values: [1, 'u'.repeat(300)] },
  { field: 'type', paths: ['/v1/jobs'], values: [1, null, 'chat', '', ['completion'], 'COMPLETION'] },
  { field: 'continuation', paths: ['/v1/score'], values: [1, '', null, ['a']] },
  { field: 'continuation', paths: ['/v1/jobs'], values: ['completion jobs have none'] },
  {
    field: 'decimation',
    paths: ['/v1/completions', '/v1/chat/completions', '/v1/score', '/v1/jobs'],
    values: ['maybe', 1, {}, true, 'ON'],
  },
  {
    field: 'decimation_params',
    paths: ['/v1/completions', '/v1/chat/completions', '/v1/score', '/v1/jobs'],
    values: BAD_DECIMATION_PARAMS,
  },
  { field: 'protect', paths: ['/v1/completions', '/v1/chat/completions', '/v1/jobs'], values: [0, -1, 1.5, '2'] },
  {
    field: 'priority',
    paths: ['/v1/completions', '/v1/chat/completions', '/v1/score', '/v1/jobs'],
    values: [0, 11, 1.5, 'high'],
  },
  {
    field: 'webhook',
    paths: ['/v1/jobs'],
    values: [{ url: 'ftp://example.com/x' }, { url: 'not a url' }, 'http://example.com', { url: 1 }, {}],
  },
  {
    field: 'metadata',
    paths: ['/v1/jobs'],
    values: [{ a: 1 }, Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])), [], 'meta'],
  },
  {
    field: 'messages',
    paths: ['/v1/chat/completions'],
    values: [
      [],
      'hello',
      [{ role: 'user' }],
      [{ role: 'tool', content: 'x' }],
      [{ role: 'user', content: 1 }],
      [{ role: 'user', content: [] }],
      [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x' } }] }],
      [{ role: 'user', content: 'x', extra: 1 }],
      null,
    ],
  },
  { field: 'max_completion_tokens', paths: ['/v1/chat/completions'], values: [-1, 1.5, '16', 257, 1e9] },
  { field: 'unknown_field', paths: ['/v1/completions', '/v1/chat/completions', '/v1/score', '/v1/jobs'], values: [1] },
  { field: '__proto__', paths: ['/v1/completions', '/v1/chat/completions'], values: [{ polluted: true }] },
];
