// The edge's engines in workerd (bench/onnx-workerd.ts drives `wrangler dev` on the test/workerd harness):
// mamba/wasm's SIMD engine (fp32, int8; prefill and decode, as the edge's EDGE_ENGINE runs it) and, unless left out,
// ORT's fp32 export (If step, lean step), so the workerd figures sit next to the Node rows.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { MambaConfig, MambaWeights } from '../../mamba/engine.ts';
import { exportMambaOnnx } from '../../mamba/onnx/export/export-model.ts';
import { writeOnnxExport } from '../../mamba/onnx/node.ts';
import { benchWorkerd, workerBundleSize, type WorkerdTimings } from '../onnx-workerd.ts';

export interface WorkerdRow {
  label: string;
  /** The Node WASM row it compares with (and the one holding its prefill figures). */
  nodeRow: string;
  prefillRow: string;
  /** tok/s timed inside the Worker (the harness's serverMs: engine work only, as the Node rows time it). */
  prefill: Record<number, number>;
  decode: number;
  /** tok/s timed by the client: the whole local HTTP request (a fixed ~25 ms round trip included). */
  client: { prefill: Record<number, number>; decode: number };
  wasmMemoryMiB: number;
}

function figures(t: WorkerdTimings): Pick<WorkerdRow, 'prefill' | 'decode' | 'client' | 'wasmMemoryMiB'> {
  return {
    prefill: Object.fromEntries(t.prefill.map((p) => [p.length, p.serverTokensPerSecond])),
    decode: t.serverDecodeTokensPerSecond,
    client: {
      prefill: Object.fromEntries(t.prefill.map((p) => [p.length, p.tokensPerSecond])),
      decode: t.decodeTokensPerSecond,
    },
    wasmMemoryMiB: t.wasmMemoryMiB,
  };
}

export async function workerdRows(
  config: MambaConfig,
  weights: MambaWeights,
  tmp: string,
  ids: (n: number) => number[],
  log: (m: string) => void,
  /** The checkpoint folder: its model.safetensors feeds the SIMD step rows. */
  checkpointDir: string,
  withOrt = true,
): Promise<WorkerdRow[]> {
  const bundle = join(tmp, 'peers-bundle');
  // The harness's wrangler.toml names test/.tmp/workerd-model as its assets; the dry-run bundle needs it to exist
  // (each run below serves its own folder instead).
  mkdirSync(join(tmp, '..', '..', '..', 'test', '.tmp', 'workerd-model'), { recursive: true });
  workerBundleSize(bundle);
  const out: WorkerdRow[] = [];
  for (const lean of withOrt ? [false, true] : []) {
    const label = lean ? 'fp32, lean step' : 'fp32, If step (edge today)';
    const dir = join(tmp, `peers-workerd-${lean ? 'lean' : 'if'}`);
    await writeOnnxExport(dir, exportMambaOnnx(config, weights, { decimationLayers: [], leanStep: lean }));
    log(`workerd: ${label}`);
    const t = await benchWorkerd(bundle, dir, tmp, ids);
    out.push({
      label,
      nodeRow: label,
      prefillRow: 'fp32, If step (edge today)',
      ...figures(t),
    });
  }
  // The SIMD engine reads manifest.json (config) and model.safetensors; the graph is there but never loaded.
  const dir = join(tmp, 'peers-workerd-simd');
  await writeOnnxExport(dir, exportMambaOnnx(config, weights, { decimationLayers: [], leanStep: false }));
  copyFileSync(join(checkpointDir, 'model.safetensors'), join(dir, 'model.safetensors'));
  for (const precision of ['fp32', 'int8']) {
    const label = `SIMD ${precision} (mamba/wasm; no ORT)`;
    log(`workerd: ${label}`);
    const t = await benchWorkerd(bundle, dir, tmp, ids, `wasm-${precision}`);
    out.push({
      label: `${label} (EDGE_ENGINE=wasm-${precision})`,
      nodeRow: label,
      prefillRow: label,
      ...figures(t),
    });
  }
  return out;
}
