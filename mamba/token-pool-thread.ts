// One thread of the tokenizer pool (token-pool.ts): loads the tokenizer once, then encodes batches of texts for the
// thread that owns the pool. Each text answers on its own (ids, or the message of what it threw), so one bad prompt
// fails only itself; ids travel back as transferred Int32Arrays, not as cloned arrays of numbers.
import { readFile } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { loadTokenizer } from './tokenizer.ts';

export interface TokenPoolThreadData {
  tokenizerPath: string;
  configPath?: string;
}
export type ToPoolThread = { id: number; texts: string[] };
export type PoolThreadAnswer = Int32Array | { error: string };
export type FromPoolThread = { ready: true } | { id: number; results: PoolThreadAnswer[] };

const data = workerData as TokenPoolThreadData;
const json = JSON.parse(await readFile(data.tokenizerPath, 'utf8'));
const config = data.configPath ? await readFile(data.configPath, 'utf8').then(JSON.parse, () => ({})) : {};
const tokenizer = loadTokenizer(json, config);

parentPort!.on('message', (msg: ToPoolThread) => {
  const results: PoolThreadAnswer[] = msg.texts.map((text) => {
    try {
      return Int32Array.from(tokenizer.encode(text));
    } catch (err) {
      return { error: (err as Error)?.message ?? String(err) };
    }
  });
  const transfer = results.flatMap((r) => (r instanceof Int32Array ? [r.buffer as ArrayBuffer] : []));
  parentPort!.postMessage({ id: msg.id, results } satisfies FromPoolThread, transfer);
});
parentPort!.postMessage({ ready: true } satisfies FromPoolThread);
