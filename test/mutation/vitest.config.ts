// Vitest config for mutation runs only (test/mutation/run.ts): just the unit tests that cover the module being mutated
// (MUTATION_TESTS, comma-separated), so each mutant runs in seconds instead of the whole suite.
import { configDefaults, defineConfig } from 'vitest/config';

const tests = (process.env.MUTATION_TESTS ?? '').split(',').filter(Boolean);
if (tests.length === 0)
  throw new Error('test/mutation/vitest.config.ts: set MUTATION_TESTS (run it through npm run mutation)');

export default defineConfig({
  test: {
    include: tests,
    exclude: [...configDefaults.exclude, 'test/workerd/**'],
    testTimeout: 60_000,
  },
});
