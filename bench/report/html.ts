// One static HTML page: Chart.js inlined from node_modules, every chart captioned with its data source and command.
import { chartJsSource } from '../../runner/live/page.ts';
import type { ChartSpec } from './charts.ts';

export { chartJsSource };

const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
/** JSON safe inside <script> (no "</script>"). */
export const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c');

export function renderReport(
  charts: ChartSpec[],
  meta: { title: string; generated: string; command: string; missing: string[] },
): string {
  const sections = charts
    .map(
      (c) => `
<section class="chart">
  <h2>${esc(c.title)}</h2>
  <div class="canvas"><canvas id="${c.id}"></canvas></div>
  <p class="src">Data: ${c.sources.map((s) => `<code>${esc(s.file)}</code> ← <code>${esc(s.command)}</code>`).join('; ')}</p>
  ${c.note ? `<p class="note">${esc(c.note)}</p>` : ''}
</section>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(meta.title)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;max-width:1200px;color:#222}
.chart{margin:28px 0;padding:12px;border:1px solid #ddd;border-radius:6px}
.canvas{position:relative;height:380px}
.src,.note,.meta{color:#555;font-size:12px}
code{background:#f4f4f4;padding:1px 3px;border-radius:3px}
</style></head><body>
<h1>${esc(meta.title)}</h1>
<p class="meta">Generated ${esc(meta.generated)} by <code>${esc(meta.command)}</code>.</p>
${meta.missing.length ? `<p class="note">Not shown (no data yet): ${meta.missing.map(esc).join('; ')}</p>` : ''}
${sections}
<script>${chartJsSource()}</script>
<script>
const SPECS = ${scriptJson(charts.map((c) => ({ id: c.id, config: c.config })))};
window.__charts = {};
for (const s of SPECS) {
  s.config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: 'bottom' } } }, s.config.options);
  window.__charts[s.id] = new Chart(document.getElementById(s.id), s.config);
}
</script>
</body></html>
`;
}
