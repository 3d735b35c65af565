// The workerd half of the ONNX tests: runs test/workerd/*.test.ts inside workerd through @cloudflare/vitest-plugin.
// `npm test` chains it after the Node suite (the top-level config excludes this folder).
import { resolve } from 'node:path';
import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';
import { buildStepWasm } from '../../mamba/wasm/build.ts';
import { prepareWorkerdModel } from './prepare-model.ts';

const here = import.meta.dirname;
await prepareWorkerdModel();
await buildStepWasm(); // worker.ts imports dist/wasm/mamba-step.wasm

export default defineConfig({
  root: resolve(here, '../..'),
  plugins: [
    cloudflareTest({ main: resolve(here, 'worker.ts'), wrangler: { configPath: resolve(here, 'wrangler.toml') } }),
  ],
  test: {
    name: 'workerd',
    include: ['test/workerd/**/*.test.ts'],
    testTimeout: 120_000,
  },
});
