// The one interface every Mamba engine (reference, ONNX, CUDA) implements.
// Generation, sampling and scoring are written once on top of it (mamba/generate.ts, mamba/score.ts); the input
// checks every engine shares are in mamba/engine-input.ts, single-request use in mamba/engine-base.ts.

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

/** One request of a batched prefill: its own tokens and its own options. */
export interface PrefillRequest {
  ids: ArrayLike<number>;
  options?: PrefillOptions;
}

/** What a decode step returns: logits, the greedy tokens, or both (the CUDA and ONNX engines can skip the logits). */
export interface DecodeWant {
  logits?: boolean;
  argmax?: boolean;
}

export interface DecodeOutput {
  /** [batch, vocab] row-major, when asked for. */
  logits?: Float32Array;
  /** Greedy tokens (argmax, ties to the lower id), when asked for. */
  tokens?: Int32Array;
}

/**
 * Most steps DecodeSession.stepGreedy takes at once: generation takes that many greedy steps ahead of its stop checks
 * (mamba/generate.ts), so up to GREEDY_AHEAD − 1 of them may be wasted at the end.
 */
export const GREEDY_AHEAD = 8;

/** Sequences decoding together, one token each per step; their states stay inside the session between steps. */
export interface DecodeSession {
  readonly batch: number;
  /**
   * One token per sequence; −1 marks a finished sequence, whose output row is meaningless and whose state is no
   * longer kept (the CUDA engine steps it on a dummy token: its batch is fixed).
   */
  step(tokens: ArrayLike<number>, want?: DecodeWant): Promise<DecodeOutput>;
  /**
   * n greedy steps: `tokens` first, then each step's argmax as the next step's input, all on the engine's side (the
   * CUDA engine replays its step n times without a host round trip between them). Returns the n steps' argmax rows,
   * [n, batch]. Optional: generate.ts falls back to n calls of step (greedySteps).
   */
  stepGreedy?(tokens: ArrayLike<number>, n: number): Promise<Int32Array>;
  /** Sequence b's state after the last step, as a host value the session no longer touches. */
  state(b: number): ModelState;
  dispose(): void;
}

/**
 * The one contract every engine (reference, ONNX, CUDA) implements. The primitives are a batched prefill (each
 * request with its own decimation, protect and logit positions) and a batched decode session; single-request use is
 * a batch of one, written once in EngineBase (mamba/engine-base.ts). Generation and scoring sit on top
 * (mamba/generate.ts, mamba/score.ts). Bad input is an EngineInputError on every engine.
 */
export interface MambaEngine {
  readonly name: string;
  readonly config: MambaConfig;
  /**
   * Whether a batch runs faster together than its requests in turn (the CUDA engine packs them into one pass). The
   * CPU engines say false: the runner then gives them one job at a time, so each job's timings stay its own.
   */
  readonly packsBatches: boolean;
  /** Every request runs or gets its own Error in its slot (EngineInputError for bad input); the others still run. */
  prefillBatchSettled(requests: PrefillRequest[]): Promise<Array<PrefillResult | Error>>;
  /** A decode session starting from `states` (one sequence each); a state of the wrong shape is an EngineInputError. */
  openDecode(states: ModelState[]): DecodeSession;
  /** Frees native resources (sessions, device memory). */
  dispose(): Promise<void>;
  /** prefillBatchSettled that throws the first request's error. */
  prefillBatch(requests: PrefillRequest[]): Promise<PrefillResult[]>;
  /** A batch of one. */
  prefill(ids: ArrayLike<number>, options?: PrefillOptions): Promise<PrefillResult>;
  /** A decode session of one, for one step; the input state is left as it was. */
  step(token: number, state: ModelState): Promise<StepResult>;
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
