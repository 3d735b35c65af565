// GET /healthz (no API key): the process answers and its configuration loaded.
import { createRoute, z } from '@hono/zod-openapi';
import type { EdgeApp } from '../deps.ts';

export function registerHealth(app: EdgeApp): void {
  const route = createRoute({
    method: 'get',
    path: '/healthz',
    tags: ['health'],
    summary: 'Liveness (no API key needed)',
    responses: {
      200: { description: 'Alive', content: { 'application/json': { schema: z.object({ status: z.literal('ok') }) } } },
    },
  });
  app.openapi(route, (c) => c.json({ status: 'ok' as const }, 200));
}
