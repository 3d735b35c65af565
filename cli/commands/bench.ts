// `deciserve bench submit|load|cost`: a quality suite as one runner job, load scenarios on autocannon, the cost model.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { registerCommand, UsageError } from '../registry.ts';
import { intValue, listValue, stringValue } from '../values.ts';
import type { Variant } from '../../bench/scenarios/scenario.ts';

const VARIANTS: Variant[] = ['mamba', 'decimamba'];
const command = () => `deciserve ${process.argv.slice(2).join(' ')}`;

function variantsFrom(text: string | undefined): Variant[] | undefined {
  if (text === undefined) return undefined;
  const list = text.split(',').map((s) => s.trim()) as Variant[];
  for (const v of list)
    if (!VARIANTS.includes(v)) throw new UsageError(`unknown model variant '${v}' (use mamba, decimamba)`);
  return list;
}

async function writeJson(path: string, data: unknown): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, JSON.stringify(data, null, 2) + '\n');
  process.stderr.write(`wrote ${path}\n`);
}

function endpointFrom(values: Record<string, unknown>) {
  const runnerUrl = stringValue(values as never, 'runner-url') ?? process.env.RUNNER_URL;
  const edgeUrl = stringValue(values as never, 'edge-url') ?? process.env.DECISERVE_URL;
  const via = (stringValue(values as never, 'jobs-via') ?? (runnerUrl ? 'runner' : 'edge')) as 'runner' | 'edge';
  if (via !== 'runner' && via !== 'edge') throw new UsageError('--jobs-via must be runner or edge');
  const secret = process.env.RUNNER_HMAC_SECRET;
  const apiKey = process.env.DECISERVE_API_KEY;
  if (via === 'runner' && (!runnerUrl || !secret))
    throw new UsageError('jobs via the runner need --runner-url (or RUNNER_URL) and RUNNER_HMAC_SECRET');
  if (via === 'edge' && !edgeUrl)
    throw new UsageError('jobs via the edge need --edge-url (or DECISERVE_URL) and DECISERVE_API_KEY');
  return { via, runnerUrl, edgeUrl, secret, apiKey };
}

const endpointOptions = {
  'runner-url': {
    type: 'string',
    value: '<url>',
    description: 'runner base URL; jobs go to its signed /jobs (env RUNNER_URL; secret from RUNNER_HMAC_SECRET)',
  },
  'edge-url': {
    type: 'string',
    value: '<url>',
    description: 'edge API base URL (env DECISERVE_URL; key from DECISERVE_API_KEY)',
  },
  'jobs-via': {
    type: 'string',
    value: '<runner|edge>',
    description: 'where jobs are submitted (default: runner when --runner-url is set)',
  },
} as const;

registerCommand({
  name: 'bench',
  summary:
    'Benchmarks through the public API: a quality suite as one job (submit), load scenarios (load), the cost model (cost).',
  usage: 'bench submit <passkey|perplexity> [options] | bench load <scenario> [options] | bench cost [options]',
  options: {
    ...endpointOptions,
    'model-id': {
      type: 'string',
      value: '<id>',
      description: 'submit/load: the served model name sent in requests',
      default: 'deciserve-mamba',
    },
    lengths: {
      type: 'string',
      value: '<list>',
      description: 'submit: context lengths in tokens',
      default: '1000,2000,4000',
    },
    depths: { type: 'string', value: '<list>', description: 'submit passkey: needle depths', default: '0,0.5,1' },
    samples: {
      type: 'string',
      value: '<n>',
      description: 'submit: prompts (passkey: per depth; perplexity: windows) per length',
      default: '2',
    },
    seed: { type: 'string', value: '<n>', description: 'submit: seed for keys, offsets and windows', default: '0' },
    models: { type: 'string', value: '<list>', description: 'submit/load: mamba,decimamba (decimation off / on)' },
    rates: {
      type: 'string',
      value: '<list>',
      description: "load: arrival rates per second per variant (default: the scenario's)",
    },
    duration: {
      type: 'string',
      value: '<d>',
      description: "load: duration per rate, e.g. 30s (default: the scenario's)",
    },
    out: {
      type: 'string',
      short: 'o',
      value: '<file>',
      description: 'result JSON (default: bench/results/quality-<task>.json, load-<scenario>.json, cost.json)',
    },
    resume: {
      type: 'string',
      value: '<suite>',
      description: 'submit: collect an earlier suite by its id (same flags): the same job is collected, not rerun',
    },
  },
  details: [
    'Examples:',
    '  RUNNER_HMAC_SECRET=... deciserve bench submit passkey --runner-url http://127.0.0.1:8790 --lengths 1000,16000 --models mamba,decimamba',
    '  deciserve bench load smoke-jobs --runner-url http://127.0.0.1:8790 --rates 1,2,4 --duration 10s',
    '  deciserve bench cost                      # bench/cost/prices.json + measured results -> bench/results/cost.json',
    'Scenarios: bench/scenarios/scenarios.json (the k6 scripts in bench/k6/ read the same file).',
  ].join('\n'),
  async run({ values, positionals }) {
    const [sub, arg] = positionals;
    if (sub === 'submit') {
      if (arg !== 'passkey' && arg !== 'perplexity')
        throw new UsageError('bench submit needs a task: passkey or perplexity');
      const ep = endpointFrom(values);
      const { runSuite } = await import('../../bench/quality/submit.ts');
      const run = await runSuite({
        spec: {
          task: arg,
          lengths: listValue(values, 'lengths', { integer: true, min: 128 })!,
          ...(arg === 'passkey' ? { depths: listValue(values, 'depths', { min: 0, max: 1 })! } : {}),
          samples: intValue(values, 'samples', { min: 1 })!,
          seed: intValue(values, 'seed')!,
          variants: variantsFrom(stringValue(values, 'models')) ?? VARIANTS,
          model: stringValue(values, 'model-id')!,
        },
        endpoint:
          ep.via === 'runner'
            ? { via: 'runner', url: ep.runnerUrl!, secret: ep.secret }
            : { via: 'edge', url: ep.edgeUrl!, apiKey: ep.apiKey },
        command: command(),
        suite: stringValue(values, 'resume'),
        bucket: process.env.S3_BUCKET,
      });
      for (const [variant, rows] of Object.entries(run.summary.byLength)) {
        const cells = Object.entries(rows).map(
          ([len, r]) =>
            `${len}: ${arg === 'passkey' ? `${(100 * r.value).toFixed(0)}%` : r.value.toFixed(1)} (n=${r.n}${r.failed ? `, ${r.failed} failed` : ''})`,
        );
        process.stdout.write(`${variant.padEnd(10)} ${cells.join('  ')}\n`);
      }
      process.stdout.write(
        `suite ${run.suite}: job ${run.jobId} on ${run.engine}; stored s3://${run.s3.bucket}/${run.s3.key}\n`,
      );
      await writeJson(resolve(stringValue(values, 'out') ?? join('bench/results', `quality-${arg}.json`)), run);
      return 0;
    }
    if (sub === 'load') {
      if (!arg) throw new UsageError('bench load needs a scenario name (bench/scenarios/scenarios.json)');
      const ep = endpointFrom({
        ...values,
        'jobs-via': stringValue(values, 'jobs-via') ?? (stringValue(values, 'edge-url') ? 'edge' : 'runner'),
      });
      const { runLoad } = await import('../../bench/load/main.ts');
      const result = await runLoad({
        name: arg,
        model: stringValue(values, 'model-id'),
        rates: listValue(values, 'rates', { min: 0.001 }),
        duration: stringValue(values, 'duration'),
        variants: variantsFrom(stringValue(values, 'models')),
        target: {
          edgeUrl: ep.edgeUrl,
          apiKey: ep.apiKey,
          runnerUrl: ep.runnerUrl,
          runnerSecret: ep.secret,
          jobsVia: ep.via,
        },
        command: command(),
      });
      await writeJson(resolve(stringValue(values, 'out') ?? join('bench/results', `load-${arg}.json`)), result);
      return result.thresholdsPassed ? 0 : 1;
    }
    if (sub === 'cost') {
      const { buildCostReport } = await import('../../bench/cost/report.ts');
      const report = await buildCostReport(command());
      await writeJson(resolve(stringValue(values, 'out') ?? 'bench/results/cost.json'), report);
      process.stdout.write(report.headline.join('\n') + '\n');
      return 0;
    }
    throw new UsageError('usage: deciserve bench submit|load|cost … (see --help)');
  },
});
