// deciserve's WASM engines (onnxruntime-web, one thread, in this Node process) as bench contenders.
import type { MambaConfig, MambaWeights } from '../../mamba/engine.ts';
import { exportMambaOnnx, modelBytes } from '../../mamba/onnx/export/export-model.ts';
import type { Quantization } from '../../mamba/onnx/export/layers.ts';
import { createOnnxEngineNode } from '../../mamba/onnx/node.ts';
import { argmax } from '../../mamba/sampling.ts';

export interface Contender {
  name: string;
  prefillTps(ids: number[]): Promise<number>;
  /** tok/s over `steps` greedy steps after `prompt`. */
  decodeTps(prompt: number[], steps: number): Promise<number>;
}
export interface WasmContender extends Contender {
  lastLogits(ids: number[]): Promise<Float32Array>;
  allLogits(ids: number[]): Promise<Float32Array[]>;
  dispose(): Promise<void>;
}

const LABEL: Record<Quantization, string> = { none: 'fp32', int8: 'int8', 'int8-dynamic': 'int8-dynamic', int4: 'int4' };

export async function openWasmContenders(config: MambaConfig, weights: MambaWeights, quants: Quantization[] = ['none', 'int8']): Promise<WasmContender[]> {
  const out: WasmContender[] = [];
  for (const q of quants) {
    const engine = await createOnnxEngineNode(modelBytes(exportMambaOnnx(config, weights, { quantization: q, decimationLayers: [] })));
    out.push({
      name: `deciserve WASM ${LABEL[q]}`,
      async prefillTps(ids) {
        const t0 = performance.now();
        await engine.prefill(ids);
        return (ids.length / (performance.now() - t0)) * 1000;
      },
      async decodeTps(prompt, steps) {
        const start = await engine.prefill(prompt);
        let { state } = start;
        let token = argmax(start.logits[0]);
        const t0 = performance.now();
        for (let i = 0; i < steps; i++) {
          const r = await engine.step(token, state);
          state = r.state;
          token = argmax(r.logits);
        }
        return (steps / (performance.now() - t0)) * 1000;
      },
      lastLogits: async (ids) => (await engine.prefill(ids)).logits[0],
      allLogits: async (ids) => (await engine.prefill(ids, { logitPositions: 'all' })).logits,
      dispose: () => engine.dispose(),
    });
  }
  return out;
}
