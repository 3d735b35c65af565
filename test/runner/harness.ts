// Test helpers for the runner: real radosgw and Redis through infra/local/, real runner processes, a signed client.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { writeRandomCheckpoint } from '../../mamba/random-checkpoint.ts';
import { signedHeaders } from '../../protocol/signing.ts';

const run = promisify(execFile);
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const TMP = join(REPO, 'test/.tmp');
export const SECRET = 'runner-test-secret-0123456789';
/** Signs client webhooks (Standard Webhooks format), distinct from the intake SECRET. */
export const WEBHOOK_SECRET = `whsec_${Buffer.from('runner-test-webhook-key-0123456789').toString('base64')}`;

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
    server.on('error', reject);
  });
}

export interface S3Env {
  S3_ENDPOINT: string;
  S3_REGION: string;
  S3_ACCESS_KEY_ID: string;
  S3_SECRET_ACCESS_KEY: string;
}

/** Starts the memstore radosgw if it is not running (infra/local/radosgw.sh is idempotent and locked). */
export async function ensureRadosgw(): Promise<S3Env> {
  const { stdout } = await run(join(REPO, 'infra/local/radosgw.sh'), ['start'], {
    env: { ...process.env, RGW_STORE: 'memstore' },
    timeout: 300_000,
  }).then(() => run(join(REPO, 'infra/local/radosgw.sh'), ['env'], { env: { ...process.env, RGW_STORE: 'memstore' } }));
  return Object.fromEntries(
    stdout
      .trim()
      .split('\n')
      .map((line) => line.split('=', 2) as [string, string]),
  ) as unknown as S3Env;
}

export interface RedisHandle {
  url: string;
  port: number;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** SIGKILL: a crash, not a clean shutdown. */
  kill9(): Promise<void>;
  cli(...args: string[]): Promise<string>;
}

/** A private Redis (AOF on, appendfsync always) for one test file, on a free port. */
export async function startRedis(tag: string): Promise<RedisHandle> {
  const port = await freePort();
  const dir = join(TMP, `redis-${tag}-${port}`);
  await rm(dir, { recursive: true, force: true });
  const env = { ...process.env, REDIS_PORT: String(port), REDIS_DIR: dir };
  const script = join(REPO, 'infra/local/redis.sh');
  const handle: RedisHandle = {
    url: `redis://127.0.0.1:${port}`,
    port,
    start: async () => void (await run(script, ['start'], { env, timeout: 120_000 })),
    stop: async () => void (await run(script, ['stop'], { env, timeout: 30_000 })),
    kill9: async () => {
      const { stdout } = await run('cat', [join(dir, 'redis.pid')]);
      process.kill(Number(stdout.trim()), 'SIGKILL');
      for (let i = 0; i < 100; i++) {
        try {
          process.kill(Number(stdout.trim()), 0);
          await sleep(20);
        } catch {
          return;
        }
      }
    },
    cli: async (...args) => (await run('redis-cli', ['-p', String(port), ...args])).stdout.trim(),
  };
  await handle.start();
  return handle;
}

export async function writeTinyCheckpoint(
  dir: string,
  opts: { dModel?: number; nLayer?: number } = {},
): Promise<string> {
  await writeRandomCheckpoint(dir, { dModel: opts.dModel ?? 32, nLayer: opts.nLayer ?? 2, seed: 7 });
  return dir;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Environment for a runner in tests: short locks, stalled checks and backoffs so recovery takes seconds. */
export function runnerEnv(
  base: { modelDir: string; redisUrl: string; s3: S3Env; bucket: string; queue: string },
  extra: Record<string, string> = {},
) {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/root',
    RUNNER_HMAC_SECRET: SECRET,
    RUNNER_WEBHOOK_SECRET: WEBHOOK_SECRET,
    RUNNER_WEBHOOK_DEV_LOOPBACK: '1', // the tests' receivers listen on 127.0.0.1
    RUNNER_MODEL_DIR: base.modelDir,
    RUNNER_MODEL_ID: 'tiny',
    REDIS_URL: base.redisUrl,
    RUNNER_QUEUE: base.queue,
    S3_BUCKET: base.bucket,
    S3_CREATE_BUCKET: '1',
    ...base.s3,
    RUNNER_PORT: '0',
    RUNNER_LOCK_MS: '2000',
    RUNNER_STALLED_INTERVAL_MS: '1000',
    RUNNER_IDLE_POLL_MS: '300',
    RUNNER_BACKOFF_MS: '200',
    RUNNER_RECONCILE_INTERVAL_MS: '0',
    S3_RETRY_FOR_MS: '20000',
    LOG_LEVEL: 'info',
    ...extra,
  };
}

export interface LogLine {
  msg: string;
  [key: string]: unknown;
}

export interface RunnerProcess {
  pid: number;
  port: number;
  url: string;
  logs: LogLine[];
  output: () => string;
  exited: Promise<number | null>;
  waitForLog(pred: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  kill(signal?: NodeJS.Signals): void;
  /** Ids of jobs this process completed with a new result. */
  succeeded(): string[];
}

/** `entry`: node's arguments before `serve` (default: the TypeScript sources through tsx; the built bundle is one file). */
export async function spawnRunner(
  env: Record<string, string>,
  opts: { waitReady?: boolean; entry?: string[] } = {},
): Promise<RunnerProcess> {
  const entry = opts.entry ?? ['--import', 'tsx', join(REPO, 'runner/cli.ts')];
  const child: ChildProcess = spawn(process.execPath, [...entry, 'serve'], {
    env,
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  let text = '';
  let pending = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    text += chunk;
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr!.on('data', (chunk: Buffer) => (text += chunk));
  const exited = new Promise<number | null>((resolveExit) => child.on('exit', (code) => resolveExit(code)));
  const waitForLog = async (pred: (line: LogLine) => boolean, timeoutMs = 30_000) => {
    let done = false;
    void exited.then(() => (done = true));
    return waitFor(
      'a runner log line',
      () => {
        const hit = logs.find(pred);
        if (!hit && done) throw new Error(`runner exited; output:\n${text.slice(-3000)}`);
        return hit;
      },
      timeoutMs,
    );
  };
  const listening = await waitForLog((l) => l.msg === 'runner listening', 60_000);
  const port = listening.port as number;
  const proc: RunnerProcess = {
    pid: child.pid!,
    port,
    url: `http://127.0.0.1:${port}`,
    logs,
    output: () => text,
    exited,
    waitForLog,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
    succeeded: () =>
      logs.filter((l) => l.msg === 'job completed' && l.outcome === 'succeeded').map((l) => l.id as string),
  };
  if (opts.waitReady !== false)
    await waitFor(
      'runner ready',
      () =>
        fetch(`${proc.url}/readyz`).then(
          (r) => r.ok,
          () => false,
        ),
      60_000,
    );
  return proc;
}

export interface JobView {
  id: string;
  status: string;
  result_url?: string;
  error?: { message: string; code: string };
  attempts?: number;
  prompt_tokens?: number;
}

/** Speaks the signed intake protocol, like the edge API will. */
export class JobClient {
  constructor(
    public baseUrl: string,
    private readonly secret = SECRET,
  ) {}

  async request(method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Response> {
    const signed = await signedHeaders(this.secret, { method, path, body });
    return fetch(this.baseUrl + path, {
      method,
      body,
      headers: { ...signed, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    });
  }

  async submit(job: Record<string, unknown>, key?: string): Promise<{ status: number; body: JobView }> {
    const res = await this.request('POST', '/jobs', JSON.stringify(job), key ? { 'idempotency-key': key } : {});
    return { status: res.status, body: (await res.json()) as JobView };
  }

  async get(id: string): Promise<JobView> {
    const res = await this.request('GET', `/jobs/${id}`);
    return (await res.json()) as JobView;
  }

  async waitDone(id: string, timeoutMs = 30_000): Promise<JobView> {
    return waitFor(
      `job ${id}`,
      async () => {
        const view = await this.get(id).catch(() => null);
        return view && ['succeeded', 'failed', 'cancelled'].includes(view.status) ? view : null;
      },
      timeoutMs,
    );
  }

  async result<T = Record<string, unknown>>(view: JobView): Promise<T> {
    const res = await fetch(view.result_url!);
    if (!res.ok) throw new Error(`result fetch ${res.status}`);
    return (await res.json()) as T;
  }
}

export async function freshDir(name: string): Promise<string> {
  const dir = join(TMP, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  return dir;
}

/** A unique suffix per test run, so buckets and queues of earlier runs never interfere. */
export function runTag(name: string): string {
  return `${name}-${process.pid}-${Date.now().toString(36)}`;
}
