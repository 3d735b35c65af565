// Idempotency-Key for completions answered at the edge (worker/http/edge-idempotency.ts), on the Node edge: the same
// key and body replay the first answer; the same key with another body is 409 (as for runner jobs); keys are per API key.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningEdge } from '../../worker/node-server.ts';
import { OTHER_KEY, expectError, post, startEdge, tinyEdgeModel } from '../edge/helpers.ts';

let edge: RunningEdge;
beforeAll(async () => {
  edge = await startEdge((await tinyEdgeModel('abuse-idempotency')).edgeModel, {});
}, 120_000);
afterAll(() => edge?.close());

const request = (prompt: string) => ({ model: 'deciserve-mamba', prompt, max_tokens: 4, temperature: 1 });

describe('Idempotency-Key at the edge', () => {
  it('the same key and body replay the first answer (same id, same sampled text); another body is 409', async () => {
    const key = `edge-idem-${Date.now()}`;
    const first = await post(edge, '/v1/completions', request('once upon'), { 'idempotency-key': key });
    const again = await post(edge, '/v1/completions', request('once upon'), { 'idempotency-key': key });
    expect([first.status, again.status]).toEqual([200, 200]);
    const [a, b] = (await Promise.all([first.json(), again.json()])) as Array<{
      id: string;
      choices: { text: string }[];
      deciserve: { seed: number };
    }>;
    expect(b).toEqual(a);
    await expectError(
      await post(edge, '/v1/completions', request('another prompt'), { 'idempotency-key': key }),
      409,
      'idempotency_key_reused',
    );
  });

  it('keys are per API key; without a key nothing is kept; a malformed key is 400', async () => {
    const key = `edge-idem-shared-${Date.now()}`;
    expect((await post(edge, '/v1/completions', request('mine'), { 'idempotency-key': key })).status).toBe(200);
    expect(
      (
        await post(edge, '/v1/completions', request('theirs'), {
          'idempotency-key': key,
          authorization: `Bearer ${OTHER_KEY}`,
        })
      ).status,
    ).toBe(200);
    const [x, y] = await Promise.all(
      [1, 2].map(
        async () => ((await (await post(edge, '/v1/completions', request('no key'))).json()) as { id: string }).id,
      ),
    );
    expect(x).not.toBe(y);
    await expectError(
      await post(edge, '/v1/completions', request('bad key'), { 'idempotency-key': 'has space' }),
      400,
      'invalid_idempotency_key',
    );
  });
});
