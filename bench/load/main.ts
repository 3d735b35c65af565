// Entry for `deciserve bench load <scenario>`: run it, check its thresholds, print a table.
import { machine, runScenario, type DriverTarget, type RateStep } from './run.ts';
import { loadHaystack, loadScenarioFile, withOverrides } from './scenarios.ts';
import type { Scenario, Variant } from '../scenarios/scenario.ts';

export interface LoadResult {
  command: string;
  date: string;
  machine: ReturnType<typeof machine>;
  scenario: string;
  definition: Scenario;
  target: Omit<DriverTarget, 'apiKey' | 'runnerSecret'>;
  steps: RateStep[];
  thresholds: Array<{ check: string; passed: boolean }>;
  thresholdsPassed: boolean;
}

export function checkThresholds(s: Scenario, steps: RateStep[]): LoadResult['thresholds'] {
  const out: LoadResult['thresholds'] = [];
  for (const step of steps) {
    for (const v of step.variants) {
      const at = `${v.variant}@${step.rate}/s`;
      const lat = v.jobs ? v.jobs.e2eMs : v.latencyMs;
      const what = v.jobs ? 'job e2e' : 'request';
      out.push({
        check: `${at} ${what} p95 ${lat.p95} < ${s.thresholds.p95Ms} ms`,
        passed: !(lat.p95 >= s.thresholds.p95Ms),
      });
      out.push({
        check: `${at} ${what} p99 ${lat.p99} < ${s.thresholds.p99Ms} ms`,
        passed: !(lat.p99 >= s.thresholds.p99Ms),
      });
      const failures = v.errors + (v.jobs ? v.jobs.failed + v.jobs.timedOut : 0);
      const rate = failures / Math.max(1, v.requests);
      out.push({
        check: `${at} error rate ${rate.toFixed(4)} <= ${s.thresholds.errorRate}`,
        passed: rate <= s.thresholds.errorRate,
      });
      if (v.jobs && s.thresholds.submitP95Ms !== undefined)
        out.push({
          check: `${at} submit p95 ${v.latencyMs.p95} < ${s.thresholds.submitP95Ms} ms`,
          passed: !(v.latencyMs.p95 >= s.thresholds.submitP95Ms),
        });
    }
  }
  return out;
}

export async function runLoad(opts: {
  name: string;
  model?: string;
  rates?: number[];
  duration?: string;
  variants?: Variant[];
  target: DriverTarget;
  command: string;
}): Promise<LoadResult> {
  const loaded = loadScenarioFile();
  const file = { ...loaded, model: opts.model ?? loaded.model };
  const base = file.scenarios[opts.name];
  if (!base) throw new Error(`unknown scenario '${opts.name}' (have: ${Object.keys(file.scenarios).join(', ')})`);
  const scenario = withOverrides(base, { duration: opts.duration, variants: opts.variants });
  const rates = opts.rates ?? [scenario.ratePerSecond];
  const progress = (line: string) => process.stderr.write(`load ${opts.name}: ${line}\n`);
  const steps = await runScenario({
    file,
    haystack: loadHaystack(file),
    name: opts.name,
    scenario,
    rates,
    target: opts.target,
    progress,
  });
  const thresholds = checkThresholds(scenario, steps);
  for (const step of steps) {
    for (const v of step.variants) {
      const l = v.jobs ? v.jobs.e2eMs : v.latencyMs;
      process.stdout.write(
        `${opts.name} ${v.variant.padEnd(9)} rate ${step.rate}/s: ${v.requests} req, ${v.errors} err, ${v.throughputRps} req/s, ${v.jobs ? 'job e2e' : 'latency'} p50 ${l.p50} p95 ${l.p95} p99 ${l.p99} ms${v.jobs ? `, jobs ${v.jobs.succeeded}/${v.jobs.submitted}` : ''}\n`,
      );
    }
  }
  for (const t of thresholds.filter((t) => !t.passed)) process.stdout.write(`THRESHOLD FAILED: ${t.check}\n`);
  const { apiKey: _k, runnerSecret: _s, ...target } = opts.target;
  return {
    command: opts.command,
    date: new Date().toISOString(),
    machine: machine(),
    scenario: opts.name,
    definition: scenario,
    target,
    steps,
    thresholds,
    thresholdsPassed: thresholds.every((t) => t.passed),
  };
}
