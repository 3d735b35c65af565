// Runs inside a worker thread: owns the engine and runs passes. The CPU engines compute synchronously, so keeping
// them off the main thread lets BullMQ renew job locks, /healthz answer and SIGTERM be handled during a long prefill.
import { parentPort, workerData } from 'node:worker_threads';
import { loadEngine } from './engine-factory.ts';
import type { EngineThreadData, FromEngineThread, ToEngineThread } from './engine-host.ts';
import { runPass } from './pass.ts';

const port = parentPort!;
const data = workerData as EngineThreadData;
const post = (msg: FromEngineThread) => port.postMessage(msg);

try {
  const loaded = await loadEngine(data.kind, data.modelDir, data.device);
  port.on('message', (msg: ToEngineThread) => {
    runPass(loaded, msg.items, data.context).then(
      (outcomes) => post({ type: 'pass-done', passId: msg.passId, outcomes }),
      (err: unknown) => post({ type: 'pass-failed', passId: msg.passId, message: String((err as Error)?.message ?? err) }),
    );
  });
  post({ type: 'ready', engine: loaded.engine.name, nLayer: loaded.config.nLayer });
} catch (err) {
  post({ type: 'fatal', message: `cannot load engine "${data.kind}" from ${data.modelDir}: ${(err as Error).message}` });
}
