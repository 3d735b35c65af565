// The edge API inside workerd (@cloudflare/vitest-plugin): worker/index.ts with the top-level wrangler.toml, serving the
// shipped model from dist/edge-model (built here when missing or stale). Chained by `npm test` after the other two
// configs. Test files are *.spec.ts so the top-level Node config (test/**/*.test.ts) does not pick them up.
// runner-setup.ts starts a real runner (Redis + radosgw) on the port given to the Worker as RUNNER_URL.
import { resolve } from 'node:path';
import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';
import { buildEdgeModel } from '../../../worker/model/build.ts';
import { freePort } from '../../runner/harness.ts';
import { WORKERD_TEST_KEYS } from './keys.ts';

const root = resolve(import.meta.dirname, '../../..');
await buildEdgeModel();
const RUNNER_SECRET = 'workerd-test-secret-0123456789';
process.env.WORKERD_TEST_RUNNER_PORT ??= String(await freePort());
process.env.WORKERD_TEST_RUNNER_SECRET = RUNNER_SECRET;

export default defineConfig({
  root,
  plugins: [
    cloudflareTest({
      main: resolve(root, 'worker/index.ts'),
      wrangler: { configPath: resolve(root, 'wrangler.toml') },
      miniflare: {
        bindings: {
          API_KEYS: WORKERD_TEST_KEYS.join(','),
          RUNNER_URL: `http://127.0.0.1:${process.env.WORKERD_TEST_RUNNER_PORT}`,
          RUNNER_HMAC_SECRET: RUNNER_SECRET,
          LOG_REQUESTS: 'false',
          // the long-prompt test's job (>8,192 tokens, DeciMamba on the CPU runner) can pass 30 s on a loaded 2-core box
          JOB_WAIT_MS: '100000',
        },
        ratelimits: { RATE_LIMITER: { namespace_id: '6001', simple: { limit: 20, period: 60 } } },
      },
    }),
  ],
  test: {
    name: 'edge-workerd',
    include: ['test/edge/workerd/**/*.spec.ts'],
    globalSetup: [resolve(root, 'test/edge/workerd/runner-setup.ts')],
    testTimeout: 120_000,
  },
});
