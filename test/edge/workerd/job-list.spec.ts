// GET /v1/jobs in workerd (worker/index.ts) against the real runner of runner-setup.ts (Redis + radosgw): each key
// lists its own jobs only, newest first, with cursor pagination and a status filter; bad parameters are 400s.
// The Workers rate-limit binding allows 20 requests a minute per key, so this test polls sparingly.
import { exports } from 'cloudflare:workers';
import { expect, it } from 'vitest';
import { WORKERD_TEST_KEYS } from './keys.ts';

const [, , A, B] = WORKERD_TEST_KEYS as [string, string, string, string];

type View = { id: string; status: string; created_at: number; result_url?: string; url: string };
type List = { object: string; data: View[]; first_id: string | null; last_id: string | null; has_more: boolean };

const call = (path: string, key: string, body?: unknown) =>
  exports.default.fetch(`https://edge.test${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

async function list(key: string, query = ''): Promise<List> {
  const response = await call(`/v1/jobs${query}`, key);
  const body = (await response.json()) as List;
  expect(response.status, JSON.stringify(body)).toBe(200);
  return body;
}

async function submit(key: string, prompt: string): Promise<string> {
  const response = await call('/v1/jobs', key, { type: 'completion', model: 'deciserve-mamba', prompt, max_tokens: 2 });
  const body = (await response.json()) as { id: string };
  expect(response.status, JSON.stringify(body)).toBe(202);
  return body.id;
}

/** Lists until every job of the key is succeeded; backs off to 15 s between tries (≤ 9 requests in ~90 s). */
async function listWhenDone(key: string, count: number): Promise<List> {
  let pause = 1000;
  for (let tries = 0; tries < 9; tries++) {
    await new Promise((r) => setTimeout(r, pause));
    const page = await list(key);
    if (page.data.length === count && page.data.every((j) => j.status === 'succeeded')) return page;
    pause = Math.min(pause * 2, 15_000);
  }
  throw new Error(`the jobs of a key did not finish in time`);
}

it('lists each key its own jobs, newest first, with result URLs only in the owner list; pages, filters, refuses bad parameters', async () => {
  const mine = [await submit(A, 'the first of mine'), await submit(A, 'the second of mine')];
  const theirs = await submit(B, 'one of theirs');

  const done = await listWhenDone(A, 2);
  expect(done).toMatchObject({ object: 'list', first_id: mine[1], last_id: mine[0], has_more: false });
  expect(done.data.map((j) => j.id)).toEqual([mine[1], mine[0]]);
  expect(done.data[0]!.url).toBe(`https://edge.test/v1/jobs/${mine[1]}`);
  expect((await fetch(done.data[0]!.result_url!)).status).toBe(200);

  const other = await listWhenDone(B, 1);
  expect(other.data.map((j) => j.id)).toEqual([theirs]);
  const otherText = JSON.stringify(other);
  for (const job of done.data) {
    expect(otherText).not.toContain(job.id);
    expect(otherText).not.toContain(job.result_url!);
  }

  const first = await list(A, '?limit=1');
  expect([first.data.map((j) => j.id), first.has_more, first.last_id]).toEqual([[mine[1]], true, mine[1]]);
  const second = await list(A, `?limit=1&after=${first.last_id}`);
  expect([second.data.map((j) => j.id), second.has_more]).toEqual([[mine[0]], false]);
  expect((await list(A, '?status=queued')).data).toEqual([]);

  const refusals: [string, string, number, string][] = [
    [B, `?after=${mine[0]}`, 400, 'invalid_value'], // another key's job is no cursor for B
    [A, '?limit=0', 400, 'invalid_value'],
    [A, '?status=finished', 400, 'invalid_value'],
    [A, '?page=2', 400, 'unknown_parameter'],
  ];
  for (const [key, query, status, code] of refusals) {
    const response = await call(`/v1/jobs${query}`, key);
    const body = (await response.json()) as { error: { code: string; type: string; message: string } };
    expect([query, response.status, body.error.code, body.error.type]).toEqual([
      query,
      status,
      code,
      'invalid_request_error',
    ]);
  }
}, 180_000);
