// deciserve runner CLI.  Run with tsx:  npx tsx runner/cli.ts <command> [--help]
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { CONFIG_HELP, ConfigError, configFromEnv } from './config.ts';
import { createLogger } from './logger.ts';
import { startRunner } from './runner.ts';
import { signedHeaders } from '../protocol/signing.ts';

const HELP = `deciserve runner — the batch half of deciserve: signed job intake, BullMQ queue, engine passes, results in S3.

Usage:
  tsx runner/cli.ts serve                 run a runner (intake + worker by default) until SIGTERM/SIGINT
  tsx runner/cli.ts submit [options]      submit a signed job to a runner and wait for its result
      --url URL          runner base URL [http://127.0.0.1:8790]
      --type TYPE        completion | score [completion]
      --prompt TEXT | --prompt-file PATH
      --model ID         [RUNNER_MODEL_ID or basename of RUNNER_MODEL_DIR]
      --max-tokens N     [16]
      --decimation MODE  auto | on | off [auto]
      --key KEY          Idempotency-Key
      --timeout S        give up waiting after S seconds [600]
  tsx runner/cli.ts sign --method M --path P [--body-file F]
                                          print the signature headers for a request (for curl)

Signals: SIGTERM/SIGINT finish the current pass, take nothing new, then exit 0.

${CONFIG_HELP}`;

async function serveCommand(): Promise<void> {
  const config = configFromEnv();
  const log = createLogger(config.logLevel);
  const runner = await startRunner(config, log).catch((err: Error) => {
    log.fatal({ err: err.message }, 'runner failed to start');
    process.exit(1);
  });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    runner.close().then(
      () => process.exit(0),
      (err: Error) => {
        log.error({ err: err.message }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  void runner.fatal.then(async () => {
    await Promise.race([runner.close(), new Promise((r) => setTimeout(r, 10_000))]);
    process.exit(1);
  });
}

function secret(): string {
  const s = process.env.RUNNER_HMAC_SECRET;
  if (!s) throw new ConfigError('RUNNER_HMAC_SECRET is required');
  return s;
}

async function signedFetch(
  base: string,
  method: string,
  path: string,
  body?: string,
  extra: Record<string, string> = {},
) {
  const headers = await signedHeaders(secret(), { method, path, body });
  return fetch(new URL(path, base), {
    method,
    body,
    headers: { ...headers, ...extra, ...(body ? { 'content-type': 'application/json' } : {}) },
  });
}

/** Every runner CLI option is a string; `undefined` marks one without a default. Unknown options are an error. */
function stringOptions<K extends string>(argv: string[], defaults: Record<K, string | undefined>) {
  const options = Object.fromEntries(
    Object.entries<string | undefined>(defaults).map(([name, value]) => [
      name,
      { type: 'string' as const, default: value },
    ]),
  );
  return parseArgs({ args: argv, options }).values as Record<K, string | undefined>;
}

async function submitCommand(argv: string[]): Promise<void> {
  const values = stringOptions(argv, {
    url: 'http://127.0.0.1:8790',
    type: 'completion',
    prompt: undefined,
    'prompt-file': undefined,
    model: undefined,
    'max-tokens': '16',
    decimation: 'auto',
    key: undefined,
    timeout: '600',
  });
  const prompt = values.prompt ?? (values['prompt-file'] ? await readFile(values['prompt-file'], 'utf8') : undefined);
  if (!prompt) throw new ConfigError('submit needs --prompt or --prompt-file');
  const model =
    values.model ??
    process.env.RUNNER_MODEL_ID ??
    (process.env.RUNNER_MODEL_DIR ?? '').split('/').filter(Boolean).pop();
  const body = JSON.stringify({
    type: values.type,
    model,
    prompt,
    ...(values.type === 'completion' ? { max_tokens: Number(values['max-tokens']) } : {}),
    decimation: values.decimation,
  });
  const t0 = performance.now();
  const res = await signedFetch(
    values.url!,
    'POST',
    '/jobs',
    body,
    values.key ? { 'idempotency-key': values.key } : {},
  );
  const job = (await res.json()) as { id?: string; status?: string; result_url?: string };
  if (!res.ok && res.status !== 202) {
    console.error(JSON.stringify(job));
    process.exit(1);
  }
  const deadline = Date.now() + Number(values.timeout) * 1000;
  let view = job;
  while (view.status !== 'succeeded' && view.status !== 'failed' && view.status !== 'cancelled') {
    if (Date.now() > deadline) throw new Error(`job ${job.id} still ${view.status} after ${values.timeout}s`);
    await new Promise((r) => setTimeout(r, 200));
    view = (await (await signedFetch(values.url!, 'GET', `/jobs/${job.id}`)).json()) as typeof job;
  }
  const seconds = (performance.now() - t0) / 1000;
  const result = view.result_url ? await (await fetch(view.result_url)).json() : null;
  console.log(JSON.stringify({ job: view, seconds: Number(seconds.toFixed(3)), result }, null, 2));
  if (view.status !== 'succeeded') process.exit(1);
}

async function signCommand(argv: string[]): Promise<void> {
  const values = stringOptions(argv, { method: 'POST', path: '/jobs', 'body-file': undefined });
  const body = values['body-file'] ? await readFile(values['body-file']) : undefined;
  const headers = await signedHeaders(secret(), { method: values.method!, path: values.path!, body });
  for (const [k, v] of Object.entries(headers)) console.log(`${k}: ${v}`);
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (
    !command ||
    command === '--help' ||
    command === '-h' ||
    command === 'help' ||
    rest.includes('--help') ||
    rest.includes('-h')
  ) {
    console.log(HELP);
    return;
  }
  if (command === 'serve') return serveCommand();
  if (command === 'submit') return submitCommand(rest);
  if (command === 'sign') return signCommand(rest);
  console.error(`unknown command "${command}"\n\n${HELP}`);
  process.exit(2);
}

main().catch((err: Error) => {
  console.error(err instanceof ConfigError ? err.message : (err.stack ?? err.message));
  process.exit(err instanceof ConfigError ? 2 : 1);
});
