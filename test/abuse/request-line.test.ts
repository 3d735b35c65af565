// Requests the HTTP layer itself refuses still get an OpenAI-shaped JSON error from the Node edge: a backslash in a
// job path (Node's URL parsing), a request line Node's parser rejects, and a Content-Type with a space before ";"
// (the OpenAPI validator's own check: JSON 415, not plain text).
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEdge } from '../../worker/node-server.ts';
import { EDGE_KEY, isOpenAiError, startEdge, tinyEdgeModel } from '../edge/helpers.ts';

let edge: RunningEdge;
beforeAll(async () => {
  edge = await startEdge((await tinyEdgeModel('abuse-request-line')).edgeModel, {});
}, 120_000);
afterAll(() => edge?.close());

/** One raw HTTP/1.1 exchange (fetch would normalise the path first). */
function raw(requestLine: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(edge.port, '127.0.0.1', () =>
      socket.write(`${requestLine}\r\nHost: x\r\nAuthorization: Bearer ${EDGE_KEY}\r\nConnection: close\r\n\r\n`),
    );
    let data = '';
    socket.on('data', (d) => (data += d));
    socket.on('error', reject);
    socket.on('end', () =>
      resolve({ status: Number(data.split(' ')[1]), body: data.slice(data.indexOf('\r\n\r\n') + 4) }),
    );
  });
}

describe('HTTP-level refusals are JSON', () => {
  it.each([
    'GET /v1/jobs/job_a\\b HTTP/1.1',
    'DELETE /v1/jobs/\\..\\..\\etc HTTP/1.1',
    'GET \\v1\\jobs HTTP/1.1',
    'GET /v1/jobs/ job HTTP/1.1',
  ])('%s → 400 OpenAI error', async (line) => {
    const { status, body } = await raw(line);
    expect(status).toBe(400);
    expect(isOpenAiError(JSON.parse(body)), body).toBe(true);
  });

  it('Content-Type "application/json ; charset=utf-8" gets a JSON 415 naming the accepted form', async () => {
    const res = await fetch(`${edge.url}/v1/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${EDGE_KEY}`, 'content-type': 'application/json ; charset=utf-8' },
      body: JSON.stringify({ model: 'deciserve-mamba', prompt: 'hi', max_tokens: 1 }),
    });
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect([res.status, res.headers.get('content-type'), body.error.code]).toEqual([
      415,
      'application/json',
      'unsupported_media_type',
    ]);
    expect(body.error.message).toContain('application/json; charset=utf-8');
  });
});
