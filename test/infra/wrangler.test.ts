// The Worker's environments: `wrangler deploy --dry-run --env <env>` (bundles, resolves every binding, validates the
// config; no network) for dev, staging and production, plus what a dry run does not check: declared secrets match
// what worker/config.ts reads, vars are known settings, non-inherited bindings exist per env, routes, asset sizes.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { unstable_readConfig } from 'wrangler';
import { ROOT, read } from './helpers.ts';

const ENVS = ['dev', 'staging', 'production'] as const;
const CONFIG = process.env.INFRA_WRANGLER_CONFIG ?? join(ROOT, 'wrangler.toml'); // override: try a draft config
const WRANGLER = join(ROOT, 'node_modules/wrangler/bin/wrangler.js');
const configOf = (env: string) =>
  unstable_readConfig({ config: CONFIG, ...(env ? { env } : {}) }, { hideWarnings: true } as any) as any;
// Settings worker/config.ts reads (its zod schema keys), and the ones it documents as secrets.
const workerSchema = read('worker/config.ts');
const SETTINGS = [...workerSchema.matchAll(/^ {2}([A-Z][A-Z0-9_]+): /gm)].map((m) => m[1]);
const SECRETS = ['API_KEYS', 'RUNNER_HMAC_SECRET'];
const ASSET_FILE_LIMIT = 25 * 1024 * 1024; // Workers static assets: 25 MiB per file

// The [assets] folder is a build output (dist/, ignored by git) that other suites rebuild in parallel; the dry runs
// use a private build of the same model (--assets) so they never read a folder being rewritten.
const ASSETS = join(ROOT, 'test/.tmp/infra-edge-model');
beforeAll(async () => {
  const { buildEdgeModel } = await import('../../worker/model/build.ts');
  await buildEdgeModel({ out: ASSETS });
}, 300_000);

describe('wrangler.toml environments', () => {
  it('every environment passes `wrangler deploy --dry-run`, with no config warnings', async () => {
    const run = async (env: string) => {
      const outdir = mkdtempSync(join(tmpdir(), `wrangler-${env}-`));
      try {
        const { stdout, stderr } = await promisify(execFile)(
          process.execPath,
          [WRANGLER, 'deploy', '--dry-run', '--config', CONFIG, '--env', env, '--assets', ASSETS, '--outdir', outdir],
          {
            cwd: ROOT,
            env: {
              ...process.env,
              WRANGLER_SEND_METRICS: 'false',
              CLOUDFLARE_API_TOKEN: '',
              NO_COLOR: '1',
              FORCE_COLOR: '0',
            },
            maxBuffer: 16 * 1024 * 1024,
          },
        );
        const out = stdout + stderr;
        expect(out, env).toContain('--dry-run: exiting now.');
        expect(
          readdirSync(outdir).some((f) => f.endsWith('.js')),
          `${env}: no bundle in --outdir`,
        ).toBe(true);
        // Warnings such as `"vars" exists at the top level, but not on "env.X"` mean a binding silently missing in
        // that environment. The only accepted one: `secrets` is an experimental field.
        const warnings = out
          .split('\n')
          .filter(
            (l) => /^\s+- (?!"secrets" fields are experimental)/.test(l) && !/environment configuration$/.test(l),
          );
        expect(warnings, `${env} config warnings`).toEqual([]);
        return out;
      } finally {
        rmSync(outdir, { recursive: true, force: true });
      }
    };
    await Promise.all(ENVS.map(run));
  }, 180_000);

  it.each(ENVS)('%s: declares the secrets worker/config.ts needs and keeps them out of vars', (env) => {
    const c = configOf(env);
    expect(c.secrets?.required ?? []).toEqual(expect.arrayContaining(SECRETS));
    for (const s of c.secrets.required) expect(SETTINGS, `secret ${s} is not read by worker/config.ts`).toContain(s);
    for (const k of Object.keys(c.vars ?? {})) {
      expect(SETTINGS, `var ${k} is not a worker/config.ts setting`).toContain(k);
      expect(SECRETS).not.toContain(k);
    }
  });

  it.each(ENVS)('%s: has the model assets, the rate limiter, limits and compatibility settings', (env) => {
    const c = configOf(env);
    expect(c.assets?.binding).toBe('MODEL');
    expect(c.ratelimits?.map((r: any) => r.name)).toContain('RATE_LIMITER');
    expect(c.compatibility_date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    // An edge request may spend EDGE_CPU_BUDGET_MS of CPU; the Worker limit must allow it.
    expect(c.limits?.cpu_ms).toBeGreaterThanOrEqual(Number(c.vars?.EDGE_CPU_BUDGET_MS ?? 10_000));
    // The estimate's throughputs and the DeciMamba cap are measured per engine (worker/config.ts); a pinned figure
    // goes stale when the engine changes (these once held ORT's 450/90/1,024 under the WASM engine).
    for (const k of ['EDGE_PREFILL_TOKENS_PER_S', 'EDGE_DECODE_TOKENS_PER_S', 'EDGE_MAX_DECIMATION_TOKENS'])
      expect(c.vars ?? {}, `${env || 'top level'} pins ${k}`).not.toHaveProperty(k);
    // wrangler only warns when an env has no vars at all; a single missing key would silently fall back to a default.
    expect(Object.keys(c.vars ?? {})).toEqual(expect.arrayContaining(Object.keys(configOf('').vars ?? {})));
    // The edge may not accept more than the runner does (runner/config.ts defaults / infra/k8s ConfigMap).
    const runnerMax = Number(
      /RUNNER_MAX_PROMPT_TOKENS: int\(1, ([\d_]+)\)/.exec(read('runner/config.ts'))![1].replace(/_/g, ''),
    );
    if (c.vars?.MAX_PROMPT_TOKENS) expect(Number(c.vars.MAX_PROMPT_TOKENS)).toBeLessThanOrEqual(runnerMax);
  });

  it('dev runs on workers.dev; staging and production on their own custom domains', () => {
    expect(configOf('dev').workers_dev).toBe(true);
    const hosts = new Set<string>();
    for (const env of ['staging', 'production']) {
      const c = configOf(env);
      expect(c.workers_dev, env).toBe(false);
      expect(c.routes?.length, env).toBeGreaterThan(0);
      for (const r of c.routes) {
        expect(r.custom_domain, env).toBe(true);
        expect(hosts.has(r.pattern), `${r.pattern} used twice`).toBe(false);
        hosts.add(r.pattern);
      }
      expect(c.vars?.RUNNER_URL, env).toMatch(/^https:\/\//);
    }
    const names = ENVS.map((e) => configOf(e).name);
    expect(new Set(names).size).toBe(3);
    // Separate rate-limit counters per environment, so staging load cannot eat production's limit.
    const namespaces = ENVS.map((e) => configOf(e).ratelimits.find((r: any) => r.name === 'RATE_LIMITER').namespace_id);
    expect(new Set(namespaces).size).toBe(3);
    // Production's RUNNER_URL is the runner Ingress in infra/k8s.
    const ingressHost = /host: (\S+)/.exec(read('infra/k8s/runner-intake.yaml'))![1];
    expect(new URL(configOf('production').vars.RUNNER_URL).host).toBe(ingressHost);
  });

  it('every model asset fits the 25 MiB per-file limit of Workers static assets', async () => {
    // The configured folder is the one worker/model/build.ts writes by default (and what the dry runs stand in for).
    const { DEFAULT_EDGE_MODEL_DIR } = await import('../../worker/model/build.ts');
    expect(resolve(configOf('production').assets.directory)).toBe(DEFAULT_EDGE_MODEL_DIR);
    const files = readdirSync(ASSETS);
    expect(files).toEqual(expect.arrayContaining(['manifest.json', 'tokenizer.json']));
    for (const f of files) expect(statSync(join(ASSETS, f)).size, f).toBeLessThanOrEqual(ASSET_FILE_LIMIT);
  });
});
