// The edge API inside workerd (@cloudflare/vitest-plugin): worker/index.ts with the top-level wrangler.toml, serving the
// shipped model from dist/edge-model (built here when missing or stale). Chained by `npm test` after the other two
// configs. Test files are *.spec.ts so the top-level Node config (test/**/*.test.ts) does not pick them up.
import { resolve } from 'node:path';
import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';
import { buildEdgeModel } from '../../../worker/model/build.ts';
import { WORKERD_TEST_KEYS } from './keys.ts';

const root = resolve(import.meta.dirname, '../../..');
await buildEdgeModel();

export default defineConfig({
  root,
  plugins: [
    cloudflareTest({
      main: resolve(root, 'worker/index.ts'),
      wrangler: { configPath: resolve(root, 'wrangler.toml') },
      miniflare: {
        bindings: {
          API_KEYS: WORKERD_TEST_KEYS.join(','),
          // Nothing listens there: a long request must be routed to the runner and answered 503, not crash.
          RUNNER_URL: 'http://127.0.0.1:9',
          RUNNER_HMAC_SECRET: 'workerd-test-secret-0123456789',
          LOG_REQUESTS: 'false',
        },
        ratelimits: { RATE_LIMITER: { namespace_id: '6001', simple: { limit: 20, period: 60 } } },
      },
    }),
  ],
  test: {
    name: 'edge-workerd',
    include: ['test/edge/workerd/**/*.spec.ts'],
    testTimeout: 120_000,
  },
});
