// The token meter's thread (token-meter.ts): loads the tokenizer once, then measures prompts for the main
// thread, so a 4 MiB prompt costs the event loop a structured clone instead of seconds of tokenizing (issue #13).
import { readFile } from 'node:fs/promises';
import { parentPort, workerData } from 'node:worker_threads';
import { measurePrompt } from './token-budget.ts';
import { loadTokenizer } from './tokenizer.ts';

export interface TokenThreadData {
  tokenizerPath: string;
  configPath?: string;
}
export type ToTokenThread = { id: number; texts: string[]; maxTokens: number; keepIds?: boolean };

const data = workerData as TokenThreadData;
const json = JSON.parse(await readFile(data.tokenizerPath, 'utf8'));
const config = data.configPath ? await readFile(data.configPath, 'utf8').then(JSON.parse, () => ({})) : {};
const tokenizer = loadTokenizer(json, config);
const noPause = async () => {}; // nothing else runs on this thread: no turns to give

parentPort!.on('message', (msg: ToTokenThread) => {
  measurePrompt(tokenizer, msg.texts, msg.maxTokens, noPause, msg.keepIds).then(
    // token ids move to the main thread without a copy
    (cost) =>
      parentPort!.postMessage(
        { id: msg.id, cost },
        cost.ok && cost.ids ? cost.ids.map((a) => a.buffer as ArrayBuffer) : [],
      ),
    (err: Error) => parentPort!.postMessage({ id: msg.id, error: err.message }),
  );
});
parentPort!.postMessage({ ready: true });
