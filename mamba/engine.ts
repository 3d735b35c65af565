// The one interface every Mamba engine (reference, ONNX, CUDA) implements.
// Generation, sampling and scoring are written once on top of it (mamba/generate.ts, mamba/score.ts).

/** Resolved Mamba-1 hyper-parameters (see mamba/config.ts for how they are read from config.json). */
export interface MambaConfig {
  dModel: number;
  nLayer: number;
  dState: number;
  dConv: number;
  expand: number;
  dInner: number; // expand * dModel
  dtRank: number; // "auto" -> ceil(dModel / 16)
  vocabSize: number; // padded to padVocabSizeMultiple
  padVocabSizeMultiple: number;
  rmsNorm: boolean;
  normEpsilon: number;
  residualInFp32: boolean;
  tieEmbeddings: boolean;
  useConvBias: boolean;
  useProjBias: boolean; // bias on in_proj/out_proj (HF use_bias); false for all public checkpoints
}

/** DeciMamba settings (arXiv 2406.14528, official "max_p" decimation). */
export interface DecimationConfig {
  /** Indices of the decimating layers, ascending; s is the position in this list. */
  layers: number[];
  beta: number;
  lBase: number;
  minSeqLen: number;
}

/** Per-layer recurrent state, row-major like PyTorch's [d_inner, d_conv] and [d_inner, d_state]. */
export interface LayerState {
  conv: Float32Array; // last d_conv inputs to conv1d (pre-conv x), oldest first
  ssm: Float32Array; // h after the last scanned token
}

export type ModelState = LayerState[];

export interface PrefillOptions {
  /** null/undefined: plain Mamba. */
  decimation?: DecimationConfig | null;
  /** The last `protect` tokens are always kept and never scored by decimation (the query). Default 1. */
  protect?: number;
  /**
   * Which original positions to return logits for. Default 'last'. Positions must survive decimation
   * (i.e. lie in the protected tail) when decimation is active; otherwise the engine throws.
   */
  logitPositions?: 'last' | 'all' | number[];
}

export interface KeptIndices {
  layer: number;
  /** Indices into the ORIGINAL sequence (0..L-1), ascending, including the protected tail. */
  indices: Int32Array;
}

export interface PrefillResult {
  /** Original positions whose logits are returned, in the order of `logits`. */
  positions: number[];
  logits: Float32Array[];
  state: ModelState;
  /** One entry per decimating layer that ran (empty for plain Mamba). */
  kept: KeptIndices[];
}

export interface StepResult {
  logits: Float32Array;
  state: ModelState;
}

/**
 * An input the engine refuses (empty prompt, token outside the vocabulary, logit position outside the prompt or
 * dropped by decimation, state of the wrong shape): the same input fails the same way on every engine and every retry,
 * so the runner fails the job without retrying it (runner/pass/pass.ts) and the edge answers 400.
 */
export class EngineInputError extends Error {
  override name = 'EngineInputError';
}

export interface MambaEngine {
  readonly name: string;
  readonly config: MambaConfig;
  prefill(ids: ArrayLike<number>, options?: PrefillOptions): Promise<PrefillResult>;
  step(token: number, state: ModelState): Promise<StepResult>;
  /** Frees native resources (sessions, device memory). The reference engine has none. */
  dispose?(): Promise<void>;
}

/** The paper's passkey setting for a 24-layer model, scaled to a model's depth by the caller. */
export const PAPER_DECIMATION: DecimationConfig = { layers: [12], beta: 0.5, lBase: 2000, minSeqLen: 20 };

/** A dense f32 tensor, row-major. */
export interface Tensor {
  shape: number[];
  data: Float32Array;
}

/** One block's weights, with PyTorch shapes (HF Mamba-1 names in comments). */
export interface LayerWeights {
  norm: Tensor; // layers.N.norm.weight [dModel]
  inProj: Tensor; // mixer.in_proj.weight [2*dInner, dModel]
  inProjBias: Tensor | null;
  convWeight: Tensor; // mixer.conv1d.weight [dInner, 1, dConv]
  convBias: Tensor | null; // mixer.conv1d.bias [dInner]
  xProj: Tensor; // mixer.x_proj.weight [dtRank + 2*dState, dInner]
  dtProjWeight: Tensor; // mixer.dt_proj.weight [dInner, dtRank]
  dtProjBias: Tensor; // mixer.dt_proj.bias [dInner]
  aLog: Tensor; // mixer.A_log [dInner, dState]
  d: Tensor; // mixer.D [dInner]
  outProj: Tensor; // mixer.out_proj.weight [dModel, dInner]
  outProjBias: Tensor | null;
}

export interface MambaWeights {
  embedding: Tensor; // [vocabSize, dModel]
  layers: LayerWeights[];
  normF: Tensor; // backbone.norm_f.weight [dModel]
  lmHead: Tensor; // lm_head.weight, or the embedding itself when tied
}
