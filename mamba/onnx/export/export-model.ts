// Mamba-1 (+ DeciMamba) → ONNX: builds the prefill and step models from resolved config + weights.
import type { MambaConfig, MambaWeights, Tensor } from '../../engine.ts';
import type { OnnxModelBytes } from '../engine.ts';
import { MANIFEST_FORMAT, type OnnxManifest } from '../manifest.ts';
import { DType, type Dim, type DTypeCode, GraphBuilder, encodeModel, valueInfo } from './graph-builder.ts';
import { Linears, QUANTIZATIONS, type Quantization } from './layers.ts';
import type { ExpMode } from './block.ts';
import { type ModelInputs, buildPrefillBranch } from './prefill-graph.ts';
import { buildStepBranch } from './step-graph.ts';
import { STEP_FILE, buildLeanStepModel } from './lean-step.ts';

export interface ExportOptions {
  quantization?: Quantization;
  /** Layers that get a (run-time switchable) decimation block. Default: every layer. [] exports plain Mamba. */
  decimationLayers?: number[];
  /** How the recurrence computes exp(Δ·A); see block.ts. Default 'exp'. */
  expMode?: ExpMode;
  /** Longest prompt the engine accepts (checked before running). Default 16384. */
  maxSeqLen?: number;
  /** Also write the lean decode graph (step.onnx, export/lean-step.ts). Default true. */
  leanStep?: boolean;
}

export interface ExportedModel {
  manifest: OnnxManifest;
  /** File name → bytes; manifest.json is included. */
  files: Map<string, Uint8Array>;
}

/** What OnnxEngine.create takes, straight from an in-memory export. */
export function modelBytes(exported: ExportedModel): OnnxModelBytes {
  const { manifest, files } = exported;
  return {
    manifest,
    model: files.get(manifest.file)!,
    step: manifest.stepFile ? files.get(manifest.stepFile) : undefined,
  };
}

const MODEL_FILE = 'mamba.onnx';

/**
 * One graph for prefill and decode, so the weights are loaded once per session: an If on L = 1 picks the step
 * branch (a single token, direct state update) or the prefill branch (chunked Scan, decimation). Both read the
 * weights as outer-scope initializers.
 */
function buildModelGraph(
  config: MambaConfig,
  weights: MambaWeights,
  quantization: Quantization,
  decimationLayers: number[],
  expMode: ExpMode,
) {
  const { nLayer, dInner, dConv, dState, vocabSize } = config;
  const g = new GraphBuilder('mamba');
  const io: ModelInputs = {
    ids: g.input('input_ids', DType.int64, [1, 'L']),
    protect: g.input('protect', DType.int64, []),
    keep: g.input('keep', DType.int64, [nLayer]),
    logitPositions: g.input('logit_positions', DType.int64, ['P']),
    convIn: Array.from({ length: nLayer }, (_, i) => g.input(`conv_state_in.${i}`, DType.float, [dInner, dConv])),
    ssmIn: Array.from({ length: nLayer }, (_, i) => g.input(`ssm_state_in.${i}`, DType.float, [dInner, dState])),
  };
  const lin = new Linears(g, quantization);
  const prefill = new GraphBuilder('prefill', g);
  const prefillOuts = buildPrefillBranch(config, weights, lin, prefill, io, { decimationLayers, expMode });
  const step = new GraphBuilder('step', g);
  const stepOuts = buildStepBranch(config, weights, lin, step, io, expMode, decimationLayers);

  const outputs: [string, DTypeCode, Dim[]][] = [
    ['logits', DType.float, ['P', vocabSize]],
    ['logit_rows', DType.int64, ['P']],
    ...Array.from(
      { length: nLayer },
      (_, i) => [`conv_state.${i}`, DType.float, [dInner, dConv]] as [string, DTypeCode, Dim[]],
    ),
    ...Array.from(
      { length: nLayer },
      (_, i) => [`ssm_state.${i}`, DType.float, [dInner, dState]] as [string, DTypeCode, Dim[]],
    ),
    ...decimationLayers.map((i) => [`kept.${i}`, DType.int64, [`K${i}`]] as [string, DTypeCode, Dim[]]),
  ];
  for (const [name, type] of outputs) {
    prefill.output(prefillOuts.get(name)!, `prefill/${name}`, type, null);
    step.output(stepOuts.get(name)!, `step/${name}`, type, null);
  }
  const length = g.op1('Gather', [g.op1('Shape', [io.ids]), g.constI64(1)], { axis: 0 });
  const isStep = g.op1('Equal', [length, g.constI64(1)]);
  g.nodes.push({
    opType: 'If',
    input: [isStep],
    output: outputs.map(([name]) => name),
    name: 'step_or_prefill',
    attribute: [
      { name: 'then_branch', type: 5, g: step.build() },
      { name: 'else_branch', type: 5, g: prefill.build() },
    ],
  });
  for (const [name, type, shape] of outputs) g.outputs.push(valueInfo(name, type, shape));
  return g.build();
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
  if (dInner !== config.expand * dModel)
    throw new ExportError(`config dInner=${dInner} is not expand·dModel=${config.expand * dModel}`);
  if (w.layers.length !== nLayer)
    throw new ExportError(`config n_layer=${nLayer} but the checkpoint has ${w.layers.length} layers`);
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

export function exportMambaOnnx(
  config: MambaConfig,
  weights: MambaWeights,
  options: ExportOptions = {},
): ExportedModel {
  const quantization = options.quantization ?? 'none';
  if (!QUANTIZATIONS.includes(quantization))
    throw new ExportError(`unknown quantization "${quantization}" (${QUANTIZATIONS.join('|')})`);
  const decimationLayers = [...(options.decimationLayers ?? Array.from({ length: config.nLayer }, (_, i) => i))].sort(
    (a, b) => a - b,
  );
  for (const l of decimationLayers) {
    if (!Number.isInteger(l) || l < 0 || l >= config.nLayer)
      throw new ExportError(`decimation layer ${l} is outside 0..${config.nLayer - 1}`);
  }
  const maxSeqLen = options.maxSeqLen ?? 16384;
  if (!Number.isInteger(maxSeqLen) || maxSeqLen < 1)
    throw new ExportError(`maxSeqLen must be a positive integer, got ${maxSeqLen}`);
  if (config.dInner % 1 !== 0 || config.dConv < 1)
    throw new ExportError(`bad config: dInner=${config.dInner}, dConv=${config.dConv}`);
  validateWeights(config, weights);

  const expMode = options.expMode ?? 'exp';
  const model = buildModelGraph(config, weights, quantization, decimationLayers, expMode);
  const doc = `Mamba-1 d_model=${config.dModel} n_layer=${config.nLayer} vocab=${config.vocabSize} quantization=${quantization}`;
  const files = new Map<string, Uint8Array>([[MODEL_FILE, encodeModel(model, OPSETS, doc)]]);
  const manifest: OnnxManifest = {
    format: MANIFEST_FORMAT,
    config,
    quantization,
    decimationLayers,
    maxSeqLen,
    file: MODEL_FILE,
    bytes: files.get(MODEL_FILE)!.byteLength,
  };
  if (options.leanStep !== false) {
    files.set(STEP_FILE, buildLeanStepModel(config, weights, quantization, expMode));
    manifest.stepFile = STEP_FILE;
  }
  files.set('manifest.json', new TextEncoder().encode(JSON.stringify(manifest, null, 2) + '\n'));
  return { manifest, files };
}
