// Runs inside a worker thread: owns the engine and runs passes. The CPU engines compute synchronously, so keeping
// them off the main thread lets BullMQ renew job locks, /healthz answer and SIGTERM be handled during a long prefill.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { encodeCorpus, haystackText } from '../../mamba/passkey.ts';
import { TokenPool } from '../../mamba/token-pool.ts';
import { loadEngine } from './engine-factory.ts';
import type { EngineThreadData, FromEngineThread, ToEngineThread } from './engine-host.ts';
import { createLogger } from '../logger.ts';
import { runPass } from '../pass/pass.ts';
import type { PassHooks } from '../pass/pass-types.ts';

const port = parentPort!;
const data = workerData as EngineThreadData;
const post = (msg: FromEngineThread) => port.postMessage(msg);

try {
  const loaded = await loadEngine(data.kind, data.modelDir, data.device);
  const log = createLogger(data.logLevel ?? 'info', { thread: 'engine', device: data.device });
  // Prompts are tokenized on a pool of threads, so this thread runs pass N on the engine while pass N+1 is encoded.
  const pool = data.tokenThreads
    ? new TokenPool(
        {
          tokenizerPath: join(data.modelDir, 'tokenizer.json'),
          configPath: join(data.modelDir, 'tokenizer_config.json'),
        },
        data.tokenThreads,
      )
    : null;
  await pool?.start(); // every thread has its tokenizer before the first pass
  // The model's held-out text (train/'s held-out split, digits removed), tokenized on the first suite and kept.
  let haystack: number[] | undefined;
  const hooks: PassHooks = {
    haystack: () =>
      (haystack ??= encodeCorpus(
        loaded.tokenizer,
        haystackText(readFileSync(join(data.context.modelDir ?? data.modelDir, 'haystack.txt'), 'utf8')),
      )),
    log: (fields, msg) => log.info(fields, msg),
    ...(pool ? { tokenize: (texts: string[]) => pool.encode(texts) } : {}),
  };
  port.on('message', (msg: ToEngineThread) => {
    runPass(loaded, msg.items, data.context, hooks).then(
      (outcomes) => post({ type: 'pass-done', passId: msg.passId, outcomes }),
      (err: unknown) =>
        post({ type: 'pass-failed', passId: msg.passId, message: String((err as Error)?.message ?? err) }),
    );
  });
  post({ type: 'ready', engine: loaded.engine.name, nLayer: loaded.config.nLayer });
} catch (err) {
  post({
    type: 'fatal',
    message: `cannot load engine "${data.kind}" from ${data.modelDir}: ${(err as Error).message}`,
  });
}
