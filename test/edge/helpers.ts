// Shared pieces of the edge API's Node tests: API keys, a tiny model exported for the edge, an in-process edge
// server, and an OpenAI-error-shape check.
import { join } from 'node:path';
import { expect } from 'vitest';
import { buildEdgeModel } from '../../worker/model/build.ts';
import { startNodeEdge, type RunningEdge } from '../../worker/node-server.ts';
import { freshDir, writeTinyCheckpoint } from '../runner/harness.ts';

export const EDGE_KEY = 'edge-test-key-0123456789abcdef';
export const OTHER_KEY = 'edge-test-key-second-0123456789';

/** A tiny random checkpoint (2 layers, d_model 32) and its edge export, in test/.tmp/<tag>. */
export async function tinyEdgeModel(tag: string): Promise<{ checkpoint: string; edgeModel: string }> {
  const dir = await freshDir(tag);
  const checkpoint = await writeTinyCheckpoint(join(dir, 'checkpoint'));
  const { dir: edgeModel } = await buildEdgeModel({ checkpoint, out: join(dir, 'edge-model') });
  return { checkpoint, edgeModel };
}

const quiet = {
  info: () => {},
  error: (message: string, fields: Record<string, unknown>) => console.error(message, fields),
};

export function startEdge(modelDir: string, env: Record<string, string>): Promise<RunningEdge> {
  return startNodeEdge({ env: { API_KEYS: `${EDGE_KEY},${OTHER_KEY}`, ...env }, modelDir, log: quiet });
}

export function post(
  edge: RunningEdge,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(edge.url + path, {
    method: 'POST',
    headers: { authorization: `Bearer ${EDGE_KEY}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

export function get(edge: RunningEdge, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(edge.url + path, { headers: { authorization: `Bearer ${EDGE_KEY}`, ...headers } });
}

export function isOpenAiError(json: unknown): boolean {
  const error = (json as { error?: Record<string, unknown> } | null)?.error;
  return (
    !!error &&
    typeof error.message === 'string' &&
    typeof error.type === 'string' &&
    'param' in error &&
    'code' in error
  );
}

export async function expectError(response: Response, status: number, code: string): Promise<void> {
  const body = (await response.json()) as { error: { code: string } };
  expect(isOpenAiError(body), JSON.stringify(body)).toBe(true);
  expect([response.status, body.error.code]).toEqual([status, code]);
}

/** Server-Timing metric names → their entries. */
export function serverTiming(response: Response): Record<string, string> {
  return Object.fromEntries(
    (response.headers.get('server-timing') ?? '').split(',').map((m) => [m.split(';')[0]!.trim(), m.trim()]),
  );
}
