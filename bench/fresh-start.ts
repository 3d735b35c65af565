// Issue #12's first-hour target: a fresh clone, `npm ci && npm run stack`, ready in <= 90 s. Clones this repository's
// HEAD into a temporary folder, runs npm ci with an empty npm cache (every package downloaded), then npm run stack
// until it prints "deciserve is up", then SIGTERMs npm and checks the stack's ports are free again.
//   npx tsx bench/fresh-start.ts [--commit REV] [--out bench/results/fresh-start.json] [--keep]
// Wall-clock seconds (Date.now()), one run: network speed to the registry and the shared cores dominate. apt runs inside
// `npm run stack` (infra/local/install.sh); the JSON records which of its programs were missing before, so a figure
// from a fresh machine (apt included) is told apart from one where apt was a no-op.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

const REPO = join(import.meta.dirname, '..');
const arg = (name: string) => (process.argv.includes(name) ? process.argv[process.argv.indexOf(name) + 1] : undefined);
const out = arg('--out') ?? join(REPO, 'bench/results/fresh-start.json');
const PORTS = [8787, 8790, 7480, 6390];

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = createConnection({ port, host: '127.0.0.1' }, () => (s.destroy(), resolve(true)));
    s.on('error', () => resolve(false));
  });

async function main() {
  for (const p of PORTS)
    if (await listening(p)) throw new Error(`port ${p} is in use: the stack would refuse to start`);
  const missingBefore = ['radosgw', 'redis-server'].filter(
    (p) => spawnSync('sh', ['-c', `command -v ${p}`]).status !== 0,
  );
  const dir = mkdtempSync(join(tmpdir(), 'deciserve-fresh-'));
  const cache = mkdtempSync(join(tmpdir(), 'deciserve-npm-cache-'));
  spawnSync('git', ['clone', '-q', REPO, dir], { stdio: 'inherit' });
  if (arg('--commit')) spawnSync('git', ['checkout', '-q', arg('--commit')!], { cwd: dir, stdio: 'inherit' }); // a before figure
  const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir, encoding: 'utf8' }).stdout.trim();
  // A clean environment, as a new user has: PATH, HOME, and this machine's TLS trust and proxy settings (without
  // them npm cannot reach the registry here); npm's cache pointed at an empty folder.
  const network = Object.entries(process.env).filter(([k]) =>
    /^(NODE_EXTRA_CA_CERTS|SSL_CERT_(FILE|DIR)|(https?|no)_proxy)$/i.test(k),
  );
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/root',
    ...Object.fromEntries(network),
    npm_config_cache: cache,
  };

  const t0 = Date.now();
  const ci = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: dir, env, encoding: 'utf8' });
  const npmCiS = (Date.now() - t0) / 1000;
  if (ci.status !== 0) throw new Error(`npm ci failed (exit ${ci.status}):\n${ci.stderr}`);
  const added = /added (\d+) packages/.exec(ci.stdout + ci.stderr)?.[1];
  const du = spawnSync('du', ['-sm', join(dir, 'node_modules')], { encoding: 'utf8' }).stdout.split('\t')[0];

  const t1 = Date.now();
  const stack = spawn('npm', ['run', 'stack'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const up = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 300_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      if (output.includes('deciserve is up')) clearTimeout(timer), resolve(true);
    };
    stack.stdout.on('data', onData);
    stack.stderr.on('data', onData);
    stack.on('exit', () => (clearTimeout(timer), resolve(false)));
  });
  const stackS = (Date.now() - t1) / 1000;
  const exited = new Promise((r) => stack.on('exit', r));
  stack.kill('SIGTERM');
  await exited;
  await new Promise((r) => setTimeout(r, 2000));
  const stillListening = [];
  for (const p of PORTS) if (await listening(p)) stillListening.push(p);
  if (!process.argv.includes('--keep')) rmSync(dir, { recursive: true, force: true });
  rmSync(cache, { recursive: true, force: true });
  if (!up) throw new Error(`the stack did not come up:\n${output.slice(-3000)}`);

  const result = {
    command: `npx tsx bench/fresh-start.ts${process.argv.slice(2).length ? ' ' + process.argv.slice(2).join(' ') : ''}`,
    date: new Date().toISOString(),
    commit,
    machine: {
      cpus: cpus().length,
      model: cpus()[0]?.model,
      node: process.version,
      npm: spawnSync('npm', ['--version'], { encoding: 'utf8' }).stdout.trim(),
    },
    method:
      'fresh git clone, npm ci with an empty npm cache, then npm run stack until "deciserve is up"; wall clock, one run',
    target: { totalS: 90 },
    npmCi: { seconds: npmCiS, packagesAdded: Number(added), nodeModulesMB: Number(du) },
    stack: { secondsToReady: stackS },
    aptInstalledDuringStack: missingBefore,
    totalS: Math.round((npmCiS + stackS) * 10) / 10,
    portsLeftListeningAfterSigterm: stillListening,
  };
  await writeFile(out, JSON.stringify(result, null, 2) + '\n');
  console.log('| step | seconds | detail |');
  console.log('|---|---:|---|');
  console.log(`| npm ci (empty cache) | ${npmCiS.toFixed(1)} | ${added} packages, ${du} MB node_modules |`);
  const apt = missingBefore.length ? `apt included: ${missingBefore.join(', ')} were missing` : 'apt was a no-op';
  console.log(`| npm run stack to "deciserve is up" | ${stackS.toFixed(1)} | ${apt} |`);
  console.log(`| total | ${result.totalS} | target <= 90 |`);
  console.log(`ports still listening after SIGTERM: ${stillListening.join(', ') || 'none'}; wrote ${out}`);
}

await main();
