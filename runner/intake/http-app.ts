// The runner's HTTP surface: health, readiness and Prometheus metrics always; the signed job API with the intake role.
import { Hono } from 'hono';
import { errorResponse, notFound } from '../../protocol/api-errors.ts';
import type { RunnerMetrics } from '../metrics.ts';
import { liveApp } from '../live/app.ts';

export interface Readiness {
  ready: boolean;
  checks: Record<string, 'ok' | string>;
}

export function buildHttpApp(opts: { metrics: RunnerMetrics; readiness: () => Promise<Readiness>; jobs?: Hono<any> }) {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const r = await opts.readiness();
    return c.json(r, r.ready ? 200 : 503);
  });
  app.get('/metrics', async (c) => {
    const text = await opts.metrics.registry.metrics();
    return c.text(text, 200, { 'content-type': opts.metrics.registry.contentType });
  });
  if (opts.jobs) app.route('/jobs', opts.jobs);
  app.route('/live', liveApp(opts.metrics));
  app.notFound((c) =>
    errorResponse(c, notFound('route_not_found', `no route ${c.req.method} ${new URL(c.req.url).pathname}`)),
  );
  return app;
}
