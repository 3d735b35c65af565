// Dashboards and alerts may only use series the runner registers (runner/metrics.ts createMetrics()) and label
// values the runner code actually emits; Prometheus and KEDA must scrape the same labels.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, labelMatchers, read, readJson, runnerSeriesNames, yamlDocs } from './helpers.ts';

const dashboard = readJson('infra/observability/grafana-dashboard.json');
const panels = dashboard.panels.filter((p: any) => p.type !== 'row');
const dashboardExprs: string[] = panels.flatMap((p: any) => p.targets.map((t: any) => t.expr));
const alertRules = yamlDocs('infra/observability/alerts.yml')[0].groups.flatMap((g: any) => g.rules);
const allExprs = [...dashboardExprs, ...alertRules.map((r: any) => r.expr)];
// runner/ is grouped by role in subfolders: read every .ts file under it
const runnerSource = readdirSync(join(ROOT, 'runner'), { recursive: true, encoding: 'utf8' })
  .filter((f) => f.endsWith('.ts'))
  .map((f) => read(`runner/${f}`))
  .join('\n');
// Labels added by scraping (prometheus.yml relabeling / ServiceMonitor), not by the runner.
const SCRAPE_LABELS: Record<string, string[]> = {
  component: ['worker', 'intake'],
  namespace: ['deciserve'],
  job: ['deciserve-runner.*'],
};

function metricsIn(expr: string): string[] {
  // Identifiers followed by a selector, range or aggregation paren: drop PromQL functions/keywords and label names.
  return [...expr.matchAll(/\b(deciserve_runner_\w+|up)\b/g)].map((m) => m[1]);
}

describe('observability', () => {
  it('every metric in the dashboard and alerts exists in runner/metrics.ts', async () => {
    const series = await runnerSeriesNames();
    series.add('up'); // Prometheus' own per-target series
    const used = new Set(allExprs.flatMap(metricsIn));
    expect(used.size).toBeGreaterThanOrEqual(10);
    for (const m of used) expect(series.has(m), `${m} is not registered by createMetrics()`).toBe(true);
    expect(series.has('deciserve_runner_queue_jobz')).toBe(false);
  });

  it('label values in queries are ones the runner emits', () => {
    for (const expr of allExprs) {
      for (const { label, values } of labelMatchers(expr)) {
        for (const v of values) {
          if (SCRAPE_LABELS[label]) expect(SCRAPE_LABELS[label], `${label}="${v}"`).toContain(v);
          else expect(runnerSource, `${label}="${v}" in ${expr}`).toMatch(new RegExp(`'${v}'`));
        }
      }
    }
  });

  it('the dashboard has the panels the issue asks for', () => {
    const titles = panels.map((p: any) => p.title.toLowerCase()).join('\n');
    for (const t of ['queue depth', 'batch size', 'tokens/s', 'job latency', 'cost per', 'kept prompt tokens'])
      expect(titles).toContain(t);
    const decimationPanels = dashboard.panels.filter((p: any) =>
      p.targets?.some((t: any) => /by \(decimation\)/.test(t.expr)),
    );
    expect(decimationPanels.length).toBeGreaterThanOrEqual(2); // DeciMamba (on) vs Mamba (off)
    expect(dashboard.templating.list.map((v: any) => v.name)).toContain('gpu_dollars_per_hour');
    for (const e of dashboardExprs.filter((e) => e.includes('$gpu_dollars_per_hour')))
      expect(e).toMatch(/engine_seconds_total|draining/);
    const ids = dashboard.panels.map((p: any) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const e of allExprs) expect(e.split('(').length, e).toBe(e.split(')').length);
  });

  it('Prometheus scrapes the runner pods with the labels KEDA and the dashboard rely on', () => {
    const prom = yamlDocs('infra/observability/prometheus.yml')[0];
    expect(prom.rule_files).toContain('alerts.yml');
    const job = prom.scrape_configs.find((s: any) => s.job_name === 'deciserve-runner');
    const targets = job.relabel_configs.map((r: any) => r.target_label).filter(Boolean);
    expect(targets).toEqual(expect.arrayContaining(['namespace', 'pod', 'component']));
    const keep = job.relabel_configs.find((r: any) => r.action === 'keep');
    const worker = yamlDocs('infra/k8s/runner-worker.yaml')[0];
    expect(worker.spec.template.metadata.labels['app.kubernetes.io/name']).toMatch(new RegExp(`^${keep.regex}$`));
    const sm = yamlDocs('infra/k8s/monitoring.yaml').find((o) => o.kind === 'ServiceMonitor');
    expect(sm.spec.endpoints[0].relabelings.map((r: any) => r.targetLabel)).toContain('component');
  });
});
