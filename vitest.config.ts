import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // test/workerd/ runs inside workerd with its own config (test/workerd/vitest.config.ts), chained by `npm test`.
    exclude: [...configDefaults.exclude, 'test/workerd/**'],
    testTimeout: 60_000,
    pool: 'forks',
  },
});
