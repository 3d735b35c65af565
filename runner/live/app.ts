// The runner's live page, mounted by runner/intake/http-app.ts at /live: GET /live (HTML), GET /live/data (history JSON).
// Samples once a second only while someone watches (stops 30 s after the last poll), so an unwatched runner pays nothing.
import { Hono } from 'hono';
import type { Registry } from 'prom-client';
import { livePageHtml } from './page.ts';
import { LiveSampler } from './sampler.ts';

export function liveApp(metrics: { registry: Registry }, opts: { intervalMs?: number; idleStopMs?: number } = {}) {
  const sampler = new LiveSampler(metrics.registry);
  const intervalMs = opts.intervalMs ?? 1000;
  let timer: NodeJS.Timeout | null = null;
  let lastPoll = 0;
  const ensureSampling = () => {
    lastPoll = Date.now();
    if (timer) return;
    timer = setInterval(() => {
      if (Date.now() - lastPoll > (opts.idleStopMs ?? 30_000)) {
        clearInterval(timer!);
        timer = null;
        return;
      }
      void sampler.sample().catch(() => undefined);
    }, intervalMs);
    timer.unref();
  };
  let html: string | null = null;
  const app = new Hono();
  app.get('/', (c) => c.html((html ??= livePageHtml())));
  app.get('/data', async (c) => {
    ensureSampling();
    if (sampler.history().length === 0) await sampler.sample();
    return c.json({ points: sampler.history() }, 200, { 'cache-control': 'no-store' });
  });
  return app;
}
