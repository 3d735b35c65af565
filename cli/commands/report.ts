// `deciserve report`: the static benchmark page (bench/report/).
import { resolve } from 'node:path';
import { registerCommand } from '../registry.ts';
import { stringValue } from '../values.ts';

registerCommand({
  name: 'report',
  summary:
    'Write one static HTML page with charts from bench/results/*.json (and, with --s3, the quality suites stored in S3).',
  usage: 'report [options]',
  options: {
    results: { type: 'string', value: '<dir>', description: 'results folder', default: 'bench/results' },
    // Not the committed page by default: regenerating that one is a choice (--out bench/results/report.html).
    out: {
      type: 'string',
      short: 'o',
      value: '<file>',
      description: 'HTML file to write (the committed page: bench/results/report.html)',
      default: 'bench/results/tmp/report.html',
    },
    s3: { type: 'boolean', description: 'also read suites from S3 (S3_* environment, as the runner)' },
  },
  details: 'Example: deciserve report && xdg-open bench/results/tmp/report.html',
  async run({ values }) {
    const { buildReport } = await import('../../bench/report/build.ts');
    const r = await buildReport({
      resultsDir: resolve(stringValue(values, 'results')!),
      out: resolve(stringValue(values, 'out')!),
      command: `deciserve ${process.argv.slice(2).join(' ')}`.trim(),
      fromS3: values.s3 === true,
    });
    process.stdout.write(`wrote ${r.out} (${r.charts.length} charts: ${r.charts.join(', ')})\n`);
    return 0;
  },
});
