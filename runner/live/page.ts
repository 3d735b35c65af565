// The live page's HTML: Chart.js charts fed by polling <base>/data once a second (no reload).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

const require = createRequire(import.meta.url);
/** Chart.js inlined from node_modules (the package exports no UMD subpath); bench/report's pages inline it too. */
export const chartJsSource = () => readFileSync(join(dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');

export function livePageHtml(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>deciserve runner — live</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:20px;color:#222}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.card{border:1px solid #ddd;border-radius:6px;padding:10px}
.canvas{position:relative;height:240px}
.kpi{display:flex;gap:24px;font-size:18px;margin:8px 0 16px}
.kpi b{font-size:26px;display:block}
.src{color:#666;font-size:12px}
</style></head><body>
<h1>deciserve runner — live</h1>
<p class="src">Source: this runner's Prometheus registry (<code>/metrics</code>, prefix <code>deciserve_runner_</code>), sampled every second by <code>runner/live</code>; page polls <code>data</code>. Latency = accepted → result stored, mean of the jobs finished in each interval.</p>
<div class="kpi">
  <div><b id="k-queue">–</b>queued</div><div><b id="k-active">–</b>in running passes</div>
  <div><b id="k-tps">–</b>tokens/s (last pass)</div><div><b id="k-done">–</b>jobs done</div><div><b id="k-passes">–</b>passes</div>
</div>
<div class="grid">
  <div class="card"><h3>Queue depth</h3><div class="canvas"><canvas id="queue"></canvas></div></div>
  <div class="card"><h3>Running jobs and passes</h3><div class="canvas"><canvas id="batches"></canvas></div></div>
  <div class="card"><h3>Tokens/s</h3><div class="canvas"><canvas id="tps"></canvas></div></div>
  <div class="card"><h3>Recent job latency (s)</h3><div class="canvas"><canvas id="latency"></canvas></div></div>
</div>
<script>${chartJsSource()}</script>
<script>
const base = location.pathname.replace(/\\/$/, '');
const mk = (id, sets, type = 'line') => new Chart(document.getElementById(id), {
  type, data: { labels: [], datasets: sets.map(([label, color]) => ({ label, data: [], borderColor: color, backgroundColor: color, tension: 0, pointRadius: 2, spanGaps: true })) },
  options: { responsive: true, maintainAspectRatio: false, animation: false, scales: { y: { beginAtZero: true } } },
});
window.__charts = {
  queue: mk('queue', [['waiting', '#1f77b4'], ['prioritized', '#9467bd'], ['delayed', '#ff7f0e'], ['dead', '#d62728']]),
  batches: mk('batches', [['active jobs', '#2ca02c'], ['passes (cumulative)', '#7f7f7f']]),
  tps: mk('tps', [['tokens/s', '#17becf']]),
  latency: mk('latency', [['total', '#d62728'], ['queue_wait', '#1f77b4'], ['engine', '#2ca02c']], 'line'),
};
window.__polls = 0;
async function tick() {
  try {
    const res = await fetch(base + '/data', { cache: 'no-store' });
    const { points } = await res.json();
    const labels = points.map((p) => new Date(p.t).toLocaleTimeString());
    const set = (chart, series) => { chart.data.labels = labels; series.forEach((f, i) => (chart.data.datasets[i].data = points.map(f))); chart.update(); };
    set(window.__charts.queue, [(p) => p.queue.waiting ?? 0, (p) => p.queue.prioritized ?? 0, (p) => p.queue.delayed ?? 0, (p) => p.queue.dead ?? 0]);
    set(window.__charts.batches, [(p) => p.active, (p) => p.passes]);
    set(window.__charts.tps, [(p) => p.tokensPerSecond]);
    set(window.__charts.latency, [(p) => p.recentStagesS.total ?? null, (p) => p.recentStagesS.queue_wait ?? null, (p) => p.recentStagesS.engine ?? null]);
    const last = points[points.length - 1];
    if (last) {
      document.getElementById('k-queue').textContent = (last.queue.waiting ?? 0) + (last.queue.prioritized ?? 0);
      document.getElementById('k-active').textContent = last.active;
      document.getElementById('k-tps').textContent = Math.round(last.tokensPerSecond);
      document.getElementById('k-done').textContent = last.jobsDone;
      document.getElementById('k-passes').textContent = last.passes;
    }
    window.__polls++;
  } catch (e) { console.error(e); }
  setTimeout(tick, 1000);
}
tick();
</script></body></html>
`;
}
