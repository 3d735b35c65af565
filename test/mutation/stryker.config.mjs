// StrykerJS for one module at a time (test/mutation/run.ts sets MUTATE and MUTATION_TESTS).
// Concurrency 2: the dev and CI machines have 2 shared cores.
const mutate = process.env.MUTATE;
if (!mutate) throw new Error('stryker.config.mjs: set MUTATE (run it through npm run mutation)');
const name = mutate.replace(/[/.]/g, '_');

export default {
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'test/mutation/vitest.config.ts', related: false },
  mutate: [mutate],
  coverageAnalysis: 'perTest',
  concurrency: Number(process.env.MUTATION_CONCURRENCY ?? 2),
  reporters: ['json', 'clear-text'],
  jsonReporter: { fileName: `test/.tmp/mutation/${name}.json` },
  clearTextReporter: { allowColor: false, logTests: false, maxTestsToLog: 0 },
  // Outside test/: the top-level vitest config would pick up the sandbox's copies of the tests.
  tempDirName: '.stryker-tmp',
  // The sandbox copies the repository; these are large and no unit test reads them.
  ignorePatterns: [
    'models',
    'train',
    'bench/results/*.log',
    'bench/results/*.jsonl',
    'bench/results/report.html',
    'dist',
    'test/.tmp',
    '.data',
    '.corpus',
    '.wrangler',
    '.stryker-tmp',
    'test/mutation/node_modules',
  ],
  timeoutMS: 8_000, // on top of 1.5× the test's own time; a mutant stuck in a retry loop is a kill (Timeout)
  cleanTempDir: 'always',
};
