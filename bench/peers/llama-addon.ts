// llama.cpp through node-llama-cpp's prebuilt CPU addon: one model, one context, one sequence, `threads` threads.
// Typed structurally (the package lives in bench/peers/node_modules, installed on demand, so tsc never sees it).
import { join } from 'node:path';
import { PEERS_DIR } from './install.ts';

interface Sequence {
  clearHistory(): Promise<void>;
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  evaluate(tokens: number[], options?: { temperature?: number }): AsyncGenerator<number, void, void>;
  controlledEvaluate(
    input: (number | [number, { generateNext?: { logits?: boolean } }])[],
  ): Promise<({ next?: { logits?: Map<number, number> } } | undefined)[]>;
}
interface Context {
  getSequence(): Sequence;
  dispose(): Promise<void>;
}
interface Model {
  tokenize(text: string): number[];
  createContext(o: { contextSize: number; batchSize: number; threads: number; sequences: number }): Promise<Context>;
  dispose(): Promise<void>;
}
interface Llama {
  loadModel(o: { modelPath: string; gpuLayers: number }): Promise<Model>;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  getLlama(o: Record<string, unknown>): Promise<Llama>;
}

export interface AddonPeer {
  tokenize(text: string): number[];
  /** Raw next-token logits after `ids` (from a fresh state). */
  logits(ids: number[], vocabSize: number): Promise<Float32Array>;
  prefillMs(ids: number[]): Promise<number>;
  /** Wall ms for `steps` greedy decode steps after `prompt`. */
  decodeMs(prompt: number[], steps: number): Promise<number>;
  /** Process CPU ms (all threads) of the last decodeMs's timed steps. */
  lastDecodeCpuMs: number;
  dispose(): Promise<void>;
}

let llamaPromise: Promise<Llama> | null = null;

export async function openAddonPeer(
  modelPath: string,
  opts: { threads: number; contextSize: number; batchSize: number },
): Promise<AddonPeer> {
  const mod = (await import(join(PEERS_DIR, 'node_modules', 'node-llama-cpp', 'dist', 'index.js'))) as NodeLlamaCpp;
  llamaPromise ??= mod.getLlama({
    gpu: false,
    build: 'never',
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: 'error',
    maxThreads: opts.threads,
  });
  const llama = await llamaPromise;
  const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
  const context = await model.createContext({ ...opts, sequences: 1 });
  const seq = context.getSequence();
  const peer: AddonPeer = {
    tokenize: (text) => model.tokenize(text),
    async logits(ids, vocabSize) {
      await seq.clearHistory();
      const input: (number | [number, { generateNext: { logits: boolean } }])[] = ids.slice(0, -1);
      input.push([ids[ids.length - 1], { generateNext: { logits: true } }]);
      const out = await seq.controlledEvaluate(input);
      const map = out[out.length - 1]?.next?.logits;
      if (!map) throw new Error('node-llama-cpp returned no logits');
      const row = new Float32Array(vocabSize).fill(Number.NaN);
      for (const [id, v] of map) row[id] = v;
      return row;
    },
    async prefillMs(ids) {
      await seq.clearHistory();
      const t0 = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(ids);
      return performance.now() - t0;
    },
    lastDecodeCpuMs: 0,
    async decodeMs(prompt, steps) {
      await seq.clearHistory();
      await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
      let n = 0;
      let t0 = 0;
      let c0 = process.cpuUsage();
      // The first yield includes the last prompt token's evaluation; time the `steps` tokens after it.
      for await (const _ of seq.evaluate(prompt.slice(-1), { temperature: 0 })) {
        if (n === 0) [t0, c0] = [performance.now(), process.cpuUsage()];
        if (n++ === steps) break;
      }
      const cpu = process.cpuUsage(c0);
      this.lastDecodeCpuMs = (cpu.user + cpu.system) / 1000;
      return performance.now() - t0;
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
    },
  };
  return peer;
}
