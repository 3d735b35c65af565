// The edge API as one Hono app, the same on Cloudflare Workers (worker/index.ts) and Node (worker/node-server.ts).
// Order matters: request id and Server-Timing first (every answer carries them), CORS before auth (preflights carry
// no key), then the API key, the per-key rate limit, and the strict JSON body reader before zod validation.
import { swaggerUI } from '@hono/swagger-ui';
import { OpenAPIHono } from '@hono/zod-openapi';
import { cors } from 'hono/cors';
import { requestId } from 'hono/request-id';
import { timing } from 'hono/timing';
import type { AppEnv, EdgeApp, EdgeDeps, RouteDeps } from './deps.ts';
import { requireApiKey } from './http/auth.ts';
import { EdgeGate } from './http/edge-gate.ts';
import { EdgeIdempotency } from './http/edge-idempotency.ts';
import { errorResponse, handleError, notFound, zodError } from './http/errors.ts';
import { jsonBody } from './http/json-body.ts';
import { MemoryRateLimiter, rateLimit } from './http/rate-limit.ts';
import { registerChat } from './routes/chat.ts';
import { registerCompletions } from './routes/completions.ts';
import { RAN_ON_HEADER } from './routes/common.ts';
import { registerHealth } from './routes/health.ts';
import { registerJobList } from './routes/job-list.ts';
import { registerJobs } from './routes/jobs.ts';
import { registerModels } from './routes/models.ts';
import { registerScore } from './routes/score.ts';
import { apiSchemas } from './schemas.ts';

export const API_VERSION = '1.0.0';

export function createEdgeApp(deps: EdgeDeps): EdgeApp {
  const { config, log } = deps;
  const app: EdgeApp = new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (!result.success) return errorResponse(c, zodError(result.error));
    },
  });

  app.use(requestId({ limitLength: 128 }));
  app.use(timing({ crossOrigin: true, totalDescription: 'total' }));
  app.use(
    cors({
      origin: config.corsOrigins.includes('*') ? '*' : config.corsOrigins,
      allowMethods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
      exposeHeaders: ['Server-Timing', 'X-Request-Id', RAN_ON_HEADER, 'x-deciserve-job-id', 'Location', 'Retry-After'],
      maxAge: 600,
    }),
  );
  app.use(async (c, next) => {
    c.set('ranOn', 'edge'); // answered here unless a route hands the work to the runner
    const began = Date.now();
    await next();
    if (!c.res.headers.has(RAN_ON_HEADER)) c.res.headers.set(RAN_ON_HEADER, c.get('ranOn'));
    if (config.logRequests) {
      const { method } = c.req;
      log.info('request', {
        method,
        path: c.req.path,
        status: c.res.status,
        ms: Date.now() - began,
        requestId: c.get('requestId'),
        ranOn: c.get('ranOn'),
        key: c.get('apiKeyId'),
      });
    }
  });

  const auth = requireApiKey(config.apiKeys);
  app.use('/v1/*', auth, rateLimit(deps.rateLimiter));
  if (!config.publicDocs) app.use('/openapi.json', auth).use('/docs', auth);
  app.on(['POST', 'PUT', 'PATCH'], '/v1/*', jsonBody(config.limits.maxBodyBytes));

  const routeDeps: RouteDeps = {
    ...deps,
    schemas: apiSchemas(config),
    gate: new EdgeGate(config.edge.maxRunning, config.edge.maxQueued),
    idempotency: new EdgeIdempotency(),
    // In-process on both runtimes: the Workers binding counts calls, not weights.
    tokenLimiter: config.rateLimitTokensPerMinute > 0 ? new MemoryRateLimiter(config.rateLimitTokensPerMinute) : null,
    cpuLimiter:
      config.rateLimitEdgeCpuMsPerMinute > 0 ? new MemoryRateLimiter(config.rateLimitEdgeCpuMsPerMinute) : null,
  };
  registerHealth(app);
  registerModels(app, routeDeps);
  registerCompletions(app, routeDeps);
  registerChat(app, routeDeps);
  registerScore(app, routeDeps);
  registerJobs(app, routeDeps);
  registerJobList(app, routeDeps);

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API key',
  });
  app.doc31('/openapi.json', (c) => ({
    openapi: '3.1.0',
    info: {
      title: 'deciserve API',
      version: API_VERSION,
      description:
        'OpenAI-compatible completions, chat completions and scoring for Mamba models. Short contexts run at the edge (ONNX in a ' +
        'Worker), long ones on the batch runner with DeciMamba. Responses say where they ran (x-deciserve-ran-on) ' +
        'and how long each stage took (Server-Timing).',
    },
    servers: [{ url: new URL(c.req.url).origin }],
  }));
  app.get('/docs', swaggerUI({ url: '/openapi.json', title: 'deciserve API' }));

  app.notFound((c) => errorResponse(c, notFound('route_not_found', `no route ${c.req.method} ${c.req.path}`)));
  app.onError((err, c) => handleError(err, c, (message, fields) => log.error(message, fields)));
  return app;
}
