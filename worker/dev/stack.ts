// The whole deciserve stack on this machine, serving the shipped model: persistent radosgw (S3) and Redis
// (infra/local/services.sh, installed with apt on first use), the batch runner, and the edge API under
// `wrangler dev` (or on Node with --node). Prints the URLs and a curl to paste; Ctrl-C or SIGTERM stops what it started.
//
//   npm run stack [-- --node] [-- --port 8787] [-- --runner-port 8790]
// Environment: DECISERVE_API_KEY (else a key made once and kept in .data/stack/api-key; printed), RUNNER_ENGINE (onnx: the CPU engine; reference for the slow oracle), RUNNER_MODEL_DIR.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync, openSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { scriptArgs } from '../../mamba/script-args.ts';
import { buildEdgeModel, DEFAULT_CHECKPOINT, REPO } from '../model/build.ts';
import { portTaken } from './ports.ts';

const values = scriptArgs(
  'npm run stack [-- options]\nThe whole stack on this machine: radosgw (S3), Redis, the batch runner and the edge ' +
    '(wrangler dev, or Node with --node). Ctrl-C or SIGTERM stops what it started.',
  {
    node: { type: 'boolean', default: false },
    port: { type: 'string', default: '8787' },
    'runner-port': { type: 'string', default: '8790' },
  },
);
const LOGS = join(REPO, '.data/stack');
const SERVICES = join(REPO, 'infra/local/services.sh');
const MODEL_ID = 'deciserve-mamba';
const LONG_CHARS = 40_000; // ~10K tokens of English
const LONG_TOKENS_HINT = '10K';
const randomSecret = () => Buffer.from(crypto.getRandomValues(new Uint8Array(24))).toString('base64url');

const children: ChildProcess[] = [];
let startedServices = false;
let stopping = false;

function log(line: string): void {
  process.stdout.write(`[stack] ${line}\n`);
}

function isRunning(script: string, env: Record<string, string> = {}): boolean {
  return (
    spawnSync(join(REPO, 'infra/local', script), ['status'], { env: { ...process.env, ...env }, stdio: 'ignore' })
      .status === 0
  );
}

function services(command: 'start' | 'stop' | 'env'): string {
  // Stopping may happen after our terminal or pipe is gone: then its messages go to the log (a write to a closed
  // pipe would kill the script half way).
  const stderr = command === 'stop' ? openSync(join(LOGS, 'services.log'), 'a') : 'inherit';
  const result = spawnSync(SERVICES, [command], { encoding: 'utf8', stdio: ['ignore', 'pipe', stderr] });
  if (result.status !== 0) throw new Error(`infra/local/services.sh ${command} failed (exit ${result.status})`);
  return result.stdout;
}

/** A child in its own process group (so Ctrl-C reaches it only through us), output to .data/stack/<name>.log. */
function start(name: string, command: string, args: string[], env: Record<string, string>): ChildProcess {
  const logFile = join(LOGS, `${name}.log`);
  const out = createWriteStream(logFile);
  const child = spawn(command, args, {
    cwd: REPO,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  child.on('exit', (code, signal) => {
    if (!stopping) {
      log(`${name} exited (${signal ?? code}); its log: ${logFile}`);
      void shutdown(1);
    }
  });
  children.push(child);
  return child;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (stopping) throw new Error('stopping');
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`${what} did not come up within ${timeoutMs / 1000} s (logs in ${LOGS})`);
}

function signalAll(signal: NodeJS.Signals): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid) {
      try {
        process.kill(-child.pid, signal); // the child's own process group: wrangler's workerd goes with it
      } catch {
        // already gone
      }
    }
  }
}

async function shutdown(code: number): Promise<void> {
  if (stopping) {
    // A second Ctrl-C: do not wait for the runner's pass (its jobs are durable; another start picks them up).
    signalAll('SIGKILL');
    return;
  }
  stopping = true;
  log('stopping… (the runner finishes its current pass first; Ctrl-C again to kill it now)');
  signalAll('SIGTERM');
  const killLater = setTimeout(() => {
    log('the runner is still busy: killing it (its job is durable and resumes on the next start)');
    signalAll('SIGKILL');
  }, 15_000);
  await Promise.all(
    children.map((c) =>
      c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined,
    ),
  );
  clearTimeout(killLater);
  if (startedServices) {
    log('stopping radosgw and Redis (their data stays in .data/)');
    services('stop');
  }
  process.exit(code);
}

/**
 * The API key: DECISERVE_API_KEY, else one made on the first start and kept in .data/stack/api-key, so pasted curl
 * commands and configured clients keep working across restarts.
 */
async function devApiKey(): Promise<string> {
  const fromEnv = process.env.DECISERVE_API_KEY;
  if (fromEnv !== undefined) {
    if (!/^[\x21-\x7e]{16,}$/.test(fromEnv))
      throw new Error('DECISERVE_API_KEY must be at least 16 printable characters without spaces');
    return fromEnv;
  }
  const file = join(LOGS, 'api-key');
  const kept = (await readFile(file, 'utf8').catch(() => '')).trim();
  if (kept !== '') return kept;
  const key = `ds-${randomSecret()}`;
  await writeFile(file, `${key}\n`, { mode: 0o600 });
  return key;
}

async function main(): Promise<void> {
  if (Number(process.versions.node.split('.')[0]) < 22) {
    throw new Error(
      `Node ${process.versions.node}: deciserve needs Node 22 (wrangler does too); README.md says how to get it`,
    );
  }
  mkdirSync(LOGS, { recursive: true });
  for (const [flag, port] of [
    ['--port', values.port],
    ['--runner-port', values['runner-port']],
  ] as const) {
    if (await portTaken(Number(port))) throw new Error(`port ${port} is in use; pick another with ${flag}`);
  }
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void shutdown(0));
  // npm forwards SIGINT/SIGTERM to its script's shell, and dash neither execs nor passes them on: the package.json
  // script `exec`s us so the signal reaches this process. If the parent dies anyway (npm killed with SIGKILL), we are
  // reparented: following the parent is the portable way to notice (Node has no PR_SET_PDEATHSIG). The output may
  // be a pipe whose reader went with it: a write error must not stop the cleanup.
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && void shutdown(0), 500).unref();
  process.stdout.on('error', () => {});

  startedServices = !(isRunning('radosgw.sh', { RGW_STORE: 'bluestore' }) && isRunning('redis.sh'));
  log(
    startedServices
      ? 'starting radosgw (S3) and Redis (first run installs them with apt)…'
      : 'radosgw and Redis are already running',
  );
  services('start');
  const serviceEnv = Object.fromEntries(
    services('env')
      .trim()
      .split('\n')
      .map((l) => l.split(/=(.*)/s).slice(0, 2) as [string, string]),
  );

  log('building the edge model folder (the WASM engine weights and the ONNX export of the shipped checkpoint)…');
  const checkpoint = process.env.RUNNER_MODEL_DIR ?? DEFAULT_CHECKPOINT;
  const { dir: edgeModel } = await buildEdgeModel({ checkpoint });

  // A ready-made long request for the printed curl: the start of the checkpoint's haystack text.
  const longRequest = join(LOGS, 'long-request.json');
  const haystack = await readFile(join(checkpoint, 'haystack.txt'), 'utf8').catch(() => 'lorem ipsum '.repeat(5000));
  await writeFile(
    longRequest,
    JSON.stringify({ model: MODEL_ID, prompt: haystack.slice(0, LONG_CHARS), max_tokens: 16 }),
  );

  const apiKey = await devApiKey();
  const hmacSecret = randomSecret();
  const runnerUrl = `http://127.0.0.1:${values['runner-port']}`;
  const edgeUrl = `http://127.0.0.1:${values.port}`;

  log('starting the runner…');
  start('runner', process.execPath, ['--import', 'tsx', 'runner/cli.ts', 'serve'], {
    ...serviceEnv,
    RUNNER_HMAC_SECRET: hmacSecret,
    RUNNER_WEBHOOK_SECRET: `whsec_${Buffer.from(crypto.getRandomValues(new Uint8Array(32))).toString('base64')}`,
    RUNNER_WEBHOOK_DEV_LOOPBACK: '1', // local development: webhooks to localhost receivers
    RUNNER_MODEL_DIR: checkpoint,
    RUNNER_MODEL_ID: MODEL_ID,
    RUNNER_PORT: values['runner-port']!,
    RUNNER_ENGINE: process.env.RUNNER_ENGINE ?? 'onnx',
  });
  await waitFor('the runner', async () => (await fetch(`${runnerUrl}/readyz`)).ok, 120_000);

  const edgeVars: Record<string, string> = {
    API_KEYS: apiKey,
    MODEL_ID,
    RUNNER_URL: runnerUrl,
    RUNNER_HMAC_SECRET: hmacSecret,
    PUBLIC_DOCS: 'true',
  };
  if (values.node) {
    log('starting the edge API on Node…');
    start('edge', process.execPath, ['--import', 'tsx', 'worker/node-server.ts'], {
      ...edgeVars,
      MODEL_DIR: edgeModel,
      PORT: values.port!,
      LOG_REQUESTS: 'true',
    });
  } else {
    log('starting the edge API under wrangler dev (workerd)…');
    const vars = Object.entries(edgeVars).flatMap(([k, v]) => ['--var', `${k}:${v}`]);
    start(
      'edge',
      join(REPO, 'node_modules/.bin/wrangler'),
      ['dev', '--port', values.port!, '--ip', '127.0.0.1', ...vars],
      {
        WRANGLER_SEND_METRICS: 'false',
      },
    );
  }
  await waitFor('the edge API', async () => (await fetch(`${edgeUrl}/healthz`)).ok, 180_000);

  process.stdout.write(`
deciserve is up (${values.node ? 'edge on Node' : 'edge in workerd via wrangler dev'}; model ${MODEL_ID}).

  edge API     ${edgeUrl}          (docs: ${edgeUrl}/docs, OpenAPI: ${edgeUrl}/openapi.json)
  runner       ${runnerUrl}        (metrics: ${runnerUrl}/metrics)
  S3           ${serviceEnv.S3_ENDPOINT}        (bucket ${serviceEnv.S3_BUCKET})
  Redis        ${serviceEnv.REDIS_URL}
  API key      ${apiKey}
  logs         ${LOGS}/

Try it:

  curl -s ${edgeUrl}/v1/completions -H 'Authorization: Bearer ${apiKey}' -H 'Content-Type: application/json' \\
    -d '{"model":"${MODEL_ID}","prompt":"And God said","max_tokens":32,"temperature":0}' -D - 
  curl -s ${edgeUrl}/v1/chat/completions -H 'Authorization: Bearer ${apiKey}' -H 'Content-Type: application/json' \\
    -d '{"model":"${MODEL_ID}","messages":[{"role":"user","content":"And God said"}],"max_tokens":32,"temperature":0}'

  # a long document (~${LONG_TOKENS_HINT} tokens of the model's haystack) becomes a runner job with DeciMamba;
  # Prefer: respond-async answers 202 with the job URL at once (without it, it waits up to JOB_WAIT_MS):
  curl -s ${edgeUrl}/v1/completions -H 'Authorization: Bearer ${apiKey}' -H 'Content-Type: application/json' \\
    -H 'Prefer: respond-async' -d @${longRequest}
  curl -s ${edgeUrl}/v1/jobs/<id> -H 'Authorization: Bearer ${apiKey}'

Ctrl-C stops the edge and the runner${startedServices ? ', then radosgw and Redis' : ' (radosgw and Redis were already running and stay up)'}.
`);
}

main().catch((err: Error) => {
  if (!stopping) {
    process.stderr.write(`[stack] ${err.message}\n`);
    void shutdown(1);
  }
});
