// Mamba-1 (+ DeciMamba) → ONNX: builds the prefill and step models from resolved config + weights.
import type { MambaConfig, MambaWeights, Tensor } from '../../engine.ts';
import type { OnnxModelBytes } from '../engine.ts';
import { MANIFEST_FORMAT, type OnnxManifest } from '../manifest.ts';
import { GraphBuilder, encodeModel } from './graph-builder.ts';
import { Linears, type Quantization } from './layers.ts';
import { type ExpMode, buildPrefillGraph } from './prefill-graph.ts';
import { buildStepGraph } from './step-graph.ts';

export interface ExportOptions {
  quantization?: Quantization;
  /** Layers that get a (run-time switchable) decimation block. Default: every layer. [] exports plain Mamba. */
  decimationLayers?: number[];
  /** How the scan computes exp(Δ·A); see prefill-graph.ts. Default 'exp'. */
  expMode?: ExpMode;
  /** Longest prompt the engine accepts (checked before running). Default 16384. */
  maxSeqLen?: number;
}

export interface ExportedModel {
  manifest: OnnxManifest;
  /** File name → bytes; manifest.json is included. */
  files: Map<string, Uint8Array>;
}

/** What OnnxEngine.create takes, straight from an in-memory export. */
export function modelBytes(exported: ExportedModel): OnnxModelBytes {
  const { manifest, files } = exported;
  return { manifest, prefill: files.get(manifest.files.prefill)!, step: files.get(manifest.files.step)! };
}

const OPSETS = [
  { domain: '', version: 17 },
  { domain: 'com.microsoft', version: 1 },
];

export class ExportError extends Error {
  override name = 'ExportError';
}

function expectShape(t: Tensor | null, name: string, shape: number[]): void {
  if (!t) throw new ExportError(`missing tensor ${name}`);
  const ok = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
  if (!ok) throw new ExportError(`tensor ${name} has shape [${t.shape}], expected [${shape}]`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (t.data.length !== count) throw new ExportError(`tensor ${name} has ${t.data.length} values, expected ${count}`);
}

/** Rejects weights that do not match the config, naming the offending tensor. */
export function validateWeights(config: MambaConfig, w: MambaWeights): void {
  const { dModel, dInner, dState, dConv, dtRank, vocabSize, nLayer } = config;
  if (dInner !== config.expand * dModel) throw new ExportError(`config dInner=${dInner} is not expand·dModel=${config.expand * dModel}`);
  if (w.layers.length !== nLayer) throw new ExportError(`config n_layer=${nLayer} but the checkpoint has ${w.layers.length} layers`);
  expectShape(w.embedding, 'backbone.embeddings.weight', [vocabSize, dModel]);
  expectShape(w.normF, 'backbone.norm_f.weight', [dModel]);
  expectShape(w.lmHead, 'lm_head.weight', [vocabSize, dModel]);
  w.layers.forEach((l, i) => {
    const p = `backbone.layers.${i}`;
    expectShape(l.norm, `${p}.norm.weight`, [dModel]);
    expectShape(l.inProj, `${p}.mixer.in_proj.weight`, [2 * dInner, dModel]);
    if (config.useProjBias) expectShape(l.inProjBias, `${p}.mixer.in_proj.bias`, [2 * dInner]);
    expectShape(l.convWeight, `${p}.mixer.conv1d.weight`, [dInner, 1, dConv]);
    if (config.useConvBias) expectShape(l.convBias, `${p}.mixer.conv1d.bias`, [dInner]);
    expectShape(l.xProj, `${p}.mixer.x_proj.weight`, [dtRank + 2 * dState, dInner]);
    expectShape(l.dtProjWeight, `${p}.mixer.dt_proj.weight`, [dInner, dtRank]);
    expectShape(l.dtProjBias, `${p}.mixer.dt_proj.bias`, [dInner]);
    expectShape(l.aLog, `${p}.mixer.A_log`, [dInner, dState]);
    expectShape(l.d, `${p}.mixer.D`, [dInner]);
    expectShape(l.outProj, `${p}.mixer.out_proj.weight`, [dModel, dInner]);
    if (config.useProjBias) expectShape(l.outProjBias, `${p}.mixer.out_proj.bias`, [dModel]);
  });
}

export function exportMambaOnnx(config: MambaConfig, weights: MambaWeights, options: ExportOptions = {}): ExportedModel {
  const quantization = options.quantization ?? 'none';
  if (!['none', 'int8', 'int4'].includes(quantization)) throw new ExportError(`unknown quantization "${quantization}" (none|int8|int4)`);
  const decimationLayers = [...(options.decimationLayers ?? Array.from({ length: config.nLayer }, (_, i) => i))].sort((a, b) => a - b);
  for (const l of decimationLayers) {
    if (!Number.isInteger(l) || l < 0 || l >= config.nLayer) throw new ExportError(`decimation layer ${l} is outside 0..${config.nLayer - 1}`);
  }
  const maxSeqLen = options.maxSeqLen ?? 16384;
  if (!Number.isInteger(maxSeqLen) || maxSeqLen < 1) throw new ExportError(`maxSeqLen must be a positive integer, got ${maxSeqLen}`);
  if (config.dInner % 1 !== 0 || config.dConv < 1) throw new ExportError(`bad config: dInner=${config.dInner}, dConv=${config.dConv}`);
  validateWeights(config, weights);

  const files = new Map<string, Uint8Array>();
  const doc = `Mamba-1 d_model=${config.dModel} n_layer=${config.nLayer} vocab=${config.vocabSize} quantization=${quantization}`;

  const prefill = new GraphBuilder('mamba_prefill');
  buildPrefillGraph(config, weights, new Linears(prefill, quantization), prefill, { decimationLayers, expMode: options.expMode ?? 'exp' });
  files.set('prefill.onnx', encodeModel(prefill.build(), OPSETS, `${doc} (prefill)`));

  const step = new GraphBuilder('mamba_step');
  buildStepGraph(config, weights, new Linears(step, quantization), step, options.expMode ?? 'exp');
  files.set('step.onnx', encodeModel(step.build(), OPSETS, `${doc} (step)`));

  const manifest: OnnxManifest = {
    format: MANIFEST_FORMAT,
    config,
    quantization,
    decimationLayers,
    maxSeqLen,
    files: { prefill: 'prefill.onnx', step: 'step.onnx' },
    bytes: { prefill: files.get('prefill.onnx')!.byteLength, step: files.get('step.onnx')!.byteLength },
  };
  files.set('manifest.json', new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n'));
  return { manifest, files };
}
