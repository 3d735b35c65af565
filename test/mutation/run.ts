// Mutation testing of the core modules with StrykerJS, one module at a time against only the tests that cover it.
//   npm run mutation                      every module in MODULES
//   npm run mutation -- protocol/signing.ts  one (or several) of them
// Writes test/mutation/report.json (score per module, merged with earlier runs of other modules) and
// test/mutation/README.md's table. Slow (minutes per module on 2 cores), so it is not part of npm test: run it before
// a release. Modules whose tests need radosgw or Redis start them as their tests do (test/runner/harness.ts).
// StrykerJS (~170 packages) is not in the repository's npm ci: it lives in test/mutation/package.json and is
// installed there on first use (npm ci, its own lockfile); vitest and the code under test come from the root install.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const REPO = join(import.meta.dirname, '../..');
const REPORT = join(REPO, 'test/mutation/report.json');
const README = join(REPO, 'test/mutation/README.md');
const TARGET = 80;
const HERE = join(REPO, 'test/mutation');
const STRYKER = join(HERE, 'node_modules/.bin/stryker');

/** Installs test/mutation's own packages when they are missing or older than its lockfile. */
function ensureStryker(): void {
  const lock = join(HERE, 'package-lock.json');
  const installed = join(HERE, 'node_modules/.package-lock.json');
  if (existsSync(STRYKER) && existsSync(installed) && statSync(installed).mtimeMs >= statSync(lock).mtimeMs) return;
  console.log('installing StrykerJS into test/mutation/node_modules (first run)…');
  const res = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: HERE, stdio: 'inherit' });
  if (res.status !== 0) throw new Error(`npm ci in test/mutation failed (exit ${res.status})`);
}

/** Module → the tests that exercise it in-process (a mutant is only visible to code in the test's own process). */
export const MODULES: Record<string, string[]> = {
  'mamba/passkey.ts': ['test/passkey.test.ts', 'test/accuracy-tally.test.ts'],
  'mamba/sampling.ts': ['test/generation.test.ts', 'test/sampling.test.ts'],
  'worker/routing.ts': ['test/edge/routing.test.ts'],
  'protocol/signing.ts': ['test/runner/units.test.ts', 'test/runner/signing.test.ts'],
  'runner/pass/suite.ts': ['test/accuracy-tally.test.ts', 'test/runner/suite-units.test.ts'],
  'protocol/job-request.ts': ['test/runner/units.test.ts', 'test/runner/job-request.test.ts'],
  'runner/store/s3-store.ts': ['test/runner/s3-store.test.ts'],
  'runner/webhooks/webhooks.ts': ['test/runner/webhooks.test.ts'],
  'mamba/decimation.ts': ['test/decimation.test.ts', 'test/decimation-policy.test.ts'],
};

interface StrykerReport {
  files: Record<
    string,
    { mutants: Array<{ status: string; mutatorName: string; location: { start: { line: number } } }> }
  >;
}

interface ModuleScore {
  module: string;
  tests: string[];
  mutants: number;
  killed: number;
  timeout: number;
  survived: number;
  noCoverage: number;
  /** Stryker's mutation score: (killed + timeout) / (all valid mutants), in %. */
  score: number;
  survivors: string[];
  ranAt: string;
  /** The commit whose version of the module was mutated (the last commit that touched it). */
  moduleCommit: string;
}

function runModule(module: string): ModuleScore {
  const tests = MODULES[module]!;
  const moduleCommit = spawnSync('git', ['log', '-1', '--format=%h', '--', module], {
    cwd: REPO,
    encoding: 'utf8',
  }).stdout.trim();
  const env = { ...process.env, MUTATE: module, MUTATION_TESTS: tests.join(',') };
  const res = spawnSync(STRYKER, ['run', 'test/mutation/stryker.config.mjs'], { cwd: REPO, env, stdio: 'inherit' });
  if (res.status !== 0) throw new Error(`stryker failed on ${module} (exit ${res.status})`);
  const report = JSON.parse(
    readFileSync(join(REPO, 'test/.tmp/mutation', `${module.replace(/[/.]/g, '_')}.json`), 'utf8'),
  ) as StrykerReport;
  const mutants = Object.values(report.files).flatMap((f) => f.mutants);
  const count = (s: string) => mutants.filter((m) => m.status === s).length;
  const valid = mutants.filter((m) => !['CompileError', 'RuntimeError', 'Ignored'].includes(m.status)).length;
  const [killed, timeout] = [count('Killed'), count('Timeout')];
  return {
    module,
    tests,
    mutants: valid,
    killed,
    timeout,
    survived: count('Survived'),
    noCoverage: count('NoCoverage'),
    score: Math.round((1000 * (killed + timeout)) / Math.max(valid, 1)) / 10,
    survivors: mutants
      .filter((m) => m.status === 'Survived' || m.status === 'NoCoverage')
      .map((m) => `${m.mutatorName}@${m.location.start.line}`),
    ranAt: new Date().toISOString(),
    moduleCommit,
  };
}

/** Runs recorded before moduleCommit existed: the last commit touching the module before the run. */
function commitAt(module: string, ranAt: string): string {
  return spawnSync('git', ['log', '-1', `--before=${ranAt}`, '--format=%h', '--', module], {
    cwd: REPO,
    encoding: 'utf8',
  }).stdout.trim();
}

function writeReport(scores: ModuleScore[]): void {
  for (const s of scores) s.moduleCommit ??= commitAt(s.module, s.ranAt);
  const command =
    'npm run mutation -- <module> (test/mutation/run.ts; StrykerJS 9.6.1, vitest runner, perTest coverage, concurrency 2)';
  writeFileSync(REPORT, JSON.stringify({ command, target: TARGET, modules: scores }, null, 2) + '\n');
  const rows = scores.map(
    (s) =>
      `| \`${s.module}\` | ${s.moduleCommit} | ${s.mutants} | ${s.killed + s.timeout} | ${s.survived} | ${s.noCoverage} | ${s.score}% ${s.score >= TARGET ? '' : '**(under target)**'} | ${s.tests.map((t) => `\`${t}\``).join(', ')} |`,
  );
  const text = readFileSync(README, 'utf8');
  const table = [
    '| module | at commit | mutants | killed | survived | no coverage | score | tests |',
    '| --- | --- | --: | --: | --: | --: | --: | --- |',
    ...rows,
  ].join('\n');
  writeFileSync(
    README,
    text.replace(/<!-- scores -->[\s\S]*<!-- \/scores -->/, `<!-- scores -->\n${table}\n<!-- /scores -->`),
  );
}

const previous: ModuleScore[] = existsSync(REPORT)
  ? (JSON.parse(readFileSync(REPORT, 'utf8')) as { modules: ModuleScore[] }).modules
  : [];
const wanted = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(MODULES);
for (const m of wanted)
  if (!MODULES[m]) throw new Error(`unknown module ${m}; one of ${Object.keys(MODULES).join(', ')}`);
const scores = new Map(previous.map((s) => [s.module, s]));
ensureStryker();
const failed: string[] = [];
for (const module of wanted) {
  let score: ModuleScore;
  try {
    score = runModule(module);
  } catch (err) {
    console.error((err as Error).message);
    failed.push(module);
    continue;
  }
  scores.set(module, score);
  console.log(
    `${module}: ${score.score}% (${score.killed + score.timeout}/${score.mutants}); survivors: ${score.survivors.join(' ') || 'none'}`,
  );
  writeReport(
    Object.keys(MODULES)
      .filter((m) => scores.has(m))
      .map((m) => scores.get(m)!),
  );
}
if (failed.length > 0) {
  console.error(`stryker failed on: ${failed.join(', ')}`);
  process.exitCode = 1;
}
