// manifest.json, written next to the exported graphs: what the engine needs to drive them.
import type { MambaConfig } from '../engine.ts';

export const MANIFEST_FORMAT = 'deciserve-mamba-onnx/2';

export interface OnnxManifest {
  format: typeof MANIFEST_FORMAT;
  config: MambaConfig;
  quantization: 'none' | 'int8' | 'int8-dynamic' | 'int4';
  /** Layers whose prefill graph has a decimation block; a request may decimate only at these. */
  decimationLayers: number[];
  /** Longest prompt accepted. */
  maxSeqLen: number;
  /** The graph (prefill and step in one, see export-model.ts). */
  file: string;
  bytes: number;
  /** The lean decode graph (export/lean-step.ts); older exports have none and decode through `file`'s If. */
  stepFile?: string;
}

export function parseManifest(json: unknown): OnnxManifest {
  const m = json as Partial<OnnxManifest> | null;
  if (!m || m.format !== MANIFEST_FORMAT) {
    throw new Error(
      `not a deciserve ONNX export: manifest format is ${JSON.stringify(m?.format)}, expected ${MANIFEST_FORMAT}`,
    );
  }
  for (const key of ['config', 'quantization', 'decimationLayers', 'maxSeqLen', 'file'] as const) {
    if (m[key] === undefined) throw new Error(`ONNX manifest is missing "${key}"`);
  }
  return m as OnnxManifest;
}
