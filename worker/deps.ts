// What the app is built from, and the per-request context every route sees.
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { RequestIdVariables } from 'hono/request-id';
import type { TimingVariables } from 'hono/timing';
import type { PromptMeter } from '../mamba/token-budget.ts';
import type { RawBodyEnv } from '../protocol/body-limit.ts';
import type { EdgeConfig } from './config.ts';
import type { EdgeGate } from './http/edge-gate.ts';
import type { EdgeIdempotency } from './http/edge-idempotency.ts';
import type { MemoryRateLimiter, RateLimiter } from './http/rate-limit.ts';
import type { EdgeModel } from './model/edge-model.ts';
import type { RunnerClient } from './runner-client.ts';
import type { ApiSchemas } from './schemas.ts';

export interface EdgeLog {
  info(message: string, fields: Record<string, unknown>): void;
  error(message: string, fields: Record<string, unknown>): void;
}

export const consoleLog: EdgeLog = {
  info: (message, fields) => console.log(JSON.stringify({ level: 'info', msg: message, ...fields })),
  error: (message, fields) => console.error(JSON.stringify({ level: 'error', msg: message, ...fields })),
};

export interface EdgeDeps {
  config: EdgeConfig;
  /** Opened once and shared by all requests (a failed open is retried by the next request). */
  model: () => Promise<EdgeModel>;
  runner: RunnerClient | null;
  rateLimiter: RateLimiter | null;
  log: EdgeLog;
  /** Where prompts are measured: a worker thread on Node (mamba/token-meter.ts); unset, in the event loop by turns. */
  promptMeter?: PromptMeter;
}

export type AppEnv = {
  Variables: RequestIdVariables &
    TimingVariables &
    RawBodyEnv['Variables'] & { apiKeyId: string; ranOn: 'edge' | 'runner' };
};

export type EdgeApp = OpenAPIHono<AppEnv>;

export interface RouteDeps extends EdgeDeps {
  schemas: ApiSchemas;
  /** Bounds edge inference in this isolate/process (http/edge-gate.ts). */
  gate: EdgeGate;
  /** Idempotency-Key for completions answered at the edge (http/edge-idempotency.ts). */
  idempotency: EdgeIdempotency;
  /** Per-key token budget (RATE_LIMIT_TOKENS_PER_MINUTE), or null when off. */
  tokenLimiter: MemoryRateLimiter | null;
  /** Per-key edge CPU ms (RATE_LIMIT_EDGE_CPU_MS_PER_MINUTE), or null when off. */
  cpuLimiter: MemoryRateLimiter | null;
}
