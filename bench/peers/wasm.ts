// deciserve's WASM engines (mamba/wasm's SIMD engine, and onnxruntime-web; one thread, in this Node process) as bench
// contenders. ORT variants that share a prefill graph time only their decode (the prefill row would repeat the first's).
import type { MambaConfig, MambaEngine, MambaWeights, ModelState } from '../../mamba/engine.ts';
import { exportMambaOnnx, modelBytes } from '../../mamba/onnx/export/export-model.ts';
import type { Quantization } from '../../mamba/onnx/export/layers.ts';
import { createOnnxEngineNode } from '../../mamba/onnx/node.ts';
import { argmax } from '../../mamba/sampling.ts';
import type { StepPrecision } from '../../mamba/wasm/engine.ts';
import { createWasmEngineNode } from '../../mamba/wasm/node.ts';

export interface Contender {
  name: string;
  prefillTps?(ids: number[]): Promise<number>;
  /** tok/s over `steps` greedy steps after `prompt`. */
  decodeTps(prompt: number[], steps: number): Promise<number>;
  /** The last decodeTps's steps per second of process CPU time (in-process engines; unset for llama-bench). */
  lastDecodeCpuTps?: number;
}

/** Runs `steps` calls of `step` and returns [wall tok/s, CPU tok/s] (process CPU time, every thread). */
export async function timeSteps(steps: number, step: () => Promise<void>): Promise<[number, number]> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) await step();
  const cpu = process.cpuUsage(c0);
  return [(steps / (performance.now() - t0)) * 1000, (steps / ((cpu.user + cpu.system) / 1000)) * 1000];
}
export interface WasmContender extends Contender {
  lastLogits(ids: number[]): Promise<Float32Array>;
  allLogits(ids: number[]): Promise<Float32Array[]>;
  dispose(): Promise<void>;
}

interface Variant {
  q: Quantization;
  label: string;
  leanStep: boolean;
  stepPrepack: boolean;
  prefill: boolean;
}
export const VARIANTS: Variant[] = [
  { q: 'none', label: 'fp32, If step (edge today)', leanStep: false, stepPrepack: false, prefill: true },
  { q: 'none', label: 'fp32, lean step', leanStep: true, stepPrepack: false, prefill: false },
  { q: 'none', label: 'fp32, lean step, prepacked (Node)', leanStep: true, stepPrepack: true, prefill: false },
  { q: 'int8', label: 'int8, lean step', leanStep: true, stepPrepack: false, prefill: true },
];

/** mamba/wasm's engine in fp32 and int8, then (unless `withOrt` is false) the ORT variants. */
export async function openWasmContenders(
  config: MambaConfig,
  weights: MambaWeights,
  withOrt = true,
): Promise<WasmContender[]> {
  const out: WasmContender[] = [];
  for (const precision of ['fp32', 'int8'] as StepPrecision[])
    out.push(await wasmSimdContender(config, weights, precision));
  const exports = new Map<Quantization, ReturnType<typeof modelBytes>>();
  for (const v of withOrt ? VARIANTS : []) {
    if (!exports.has(v.q))
      exports.set(v.q, modelBytes(exportMambaOnnx(config, weights, { quantization: v.q, decimationLayers: [] })));
    const engine = await createOnnxEngineNode(exports.get(v.q)!, { leanStep: v.leanStep, stepPrepack: v.stepPrepack });
    out.push(engineContender(`deciserve WASM ${v.label}`, engine, v.prefill));
  }
  return out;
}

export const simdName = (precision: StepPrecision) => `deciserve WASM SIMD ${precision} (mamba/wasm; no ORT)`;

/** mamba/wasm's hand-written SIMD engine (no ORT): its blocked prefill and its decode step. */
async function wasmSimdContender(
  config: MambaConfig,
  weights: MambaWeights,
  precision: StepPrecision,
): Promise<WasmContender> {
  const engine = await createWasmEngineNode(config, weights, { precision });
  return engineContender(simdName(precision), engine, true);
}

/** What the peer bench needs of an engine: the contract's prefill, greedy steps and dispose. */
interface GreedyEngine {
  prefill: MambaEngine['prefill'];
  stepGreedy(token: number, state: ModelState): Promise<{ token: number; state: ModelState }>;
  dispose(): void | Promise<void>;
}

/** One engine as a contender: timed prefill (when `withPrefill`), timed greedy decode, logits for the parity check. */
function engineContender(name: string, engine: GreedyEngine, withPrefill: boolean): WasmContender {
  return {
    name,
    prefillTps: withPrefill
      ? async (ids) => {
          const t0 = performance.now();
          await engine.prefill(ids);
          return (ids.length / (performance.now() - t0)) * 1000;
        }
      : undefined,
    async decodeTps(prompt, steps) {
      const start = await engine.prefill(prompt);
      let { state } = start;
      let token = argmax(start.logits[0]);
      const [wall, cpu] = await timeSteps(steps, async () => {
        ({ token, state } = await engine.stepGreedy(token, state));
      });
      this.lastDecodeCpuTps = cpu;
      return wall;
    },
    lastLogits: async (ids) => (await engine.prefill(ids)).logits[0],
    allLogits: async (ids) => (await engine.prefill(ids, { logitPositions: 'all' })).logits,
    dispose: async () => engine.dispose(),
  };
}
