// The Mamba block and the layer loop, written once for every graph the exporter builds (the prefill branch, the If
// graph's step branch, the lean step model). What differs between running over a sequence and stepping one token
// from a carried state is only how x crosses time (the causal conv and the SSM recurrence) and where the state is
// read and written: a graph supplies that as a TimeMixing.
import type { LayerWeights, MambaConfig, MambaWeights } from '../../engine.ts';
import type { GraphBuilder } from './graph-builder.ts';
import { type Linears, negExpA, rmsNorm, rows, silu, transpose2d } from './layers.ts';

/** The per-token tensors between the input projections and the SSM (DeciMamba gathers them all). */
export interface TokenTensors {
  xc: string;
  delta: string;
  b: string;
  c: string;
  gate: string;
  residual: string;
}

/** How a graph runs the time-mixing parts of a block; each part records its layer's new state itself. */
export interface TimeMixing {
  /**
   * One GEMM for in_proj then a Split, and dt_proj's bias inside its GEMM followed by ORT's Softplus: on a single row
   * fewer ops matter more than kernel speed (the lean step). Otherwise two GEMMs for x and z (no Split copy) and the
   * stable softplus below.
   */
  readonly fewestOps: boolean;
  /** The causal depthwise conv of x [T, dInner] after the carried inputs, before the activation. */
  conv(x: string, layer: LayerWeights, i: number): string;
  /** DeciMamba between Δ and the SSM: keeps some tokens of every per-token tensor (prefill only). */
  select?(i: number, t: TokenTensors): TokenTensors;
  /** The selective SSM from the carried h: y [T, dInner] before the D skip. */
  ssm(t: TokenTensors, aNMajor: string, i: number): string;
}

/** Registers a layer's small fp32 tensors that every graph reads the same way and returns their names. */
export function layerParams(lin: Linears, layer: LayerWeights, i: number) {
  const p = `layers.${i}`;
  return {
    norm: lin.registerPlain(`${p}.norm`, layer.norm),
    // A = −exp(A_log) transposed to [dState, dInner]: the recurrence keeps h n-major.
    aNMajor: lin.registerPlain(`${p}.A_t`, transpose2d(negExpA(layer.aLog))),
    d: lin.registerPlain(`${p}.D`, layer.d),
  };
}

/** in_proj → x and z, [T, dInner] each. */
function projectIn(g: GraphBuilder, lin: Linears, h: string, layer: LayerWeights, i: number, mix: TimeMixing) {
  const { inProj: w, inProjBias: bias } = layer;
  const dInner = w.shape[0] / 2;
  if (mix.fewestOps) {
    const xz = lin.apply(g, h, `layers.${i}.in_proj`, w, bias);
    const [x, z] = g.op('Split', [xz, g.constI64([dInner, dInner])], { axis: 1 }, 2);
    return { x, z };
  }
  const half = (name: string, start: number) =>
    lin.apply(g, h, `layers.${i}.${name}`, rows(w, start, dInner), bias ? vectorPart(bias, start, dInner) : null);
  return { x: half('in_proj_x', 0), z: half('in_proj_z', dInner) };
}

function vectorPart(t: { shape: number[]; data: Float32Array }, start: number, count: number) {
  return { shape: [count], data: t.data.subarray(start, start + count) };
}

/**
 * softplus(v) = max(v, 0) + log(1 + exp(−|v|)): stable for any v, and ~3× cheaper in ORT-web than its Softplus
 * kernel (scalar log(exp(v)+1)). Matches PyTorch's thresholded softplus within 2e-9.
 */
function softplus(g: GraphBuilder, v: string): string {
  const tail = g.op1('Log', [g.op1('Add', [g.op1('Exp', [g.op1('Neg', [g.op1('Abs', [v])])]), g.constF32(1)])]);
  return g.op1('Add', [g.op1('Relu', [v]), tail]);
}

/** x_proj → (dt_low, B, C), then Δ = softplus(dt_proj(dt_low) + bias). All [T, ·]; the small GEMMs stay fp32. */
function projectSsmInputs(
  g: GraphBuilder,
  lin: Linears,
  xc: string,
  layer: LayerWeights,
  i: number,
  config: MambaConfig,
  mix: TimeMixing,
) {
  const { dtRank, dState } = config;
  const xdbl = lin.apply(g, xc, `layers.${i}.x_proj`, layer.xProj, null, 'none');
  const [dtLow, b, c] = g.op('Split', [xdbl, g.constI64([dtRank, dState, dState])], { axis: 1 }, 3);
  if (mix.fewestOps) {
    const dt = lin.apply(g, dtLow, `layers.${i}.dt_proj`, layer.dtProjWeight, layer.dtProjBias, 'none');
    return { delta: g.op1('Softplus', [dt]), b, c };
  }
  const dtLin = lin.apply(g, dtLow, `layers.${i}.dt_proj`, layer.dtProjWeight, null, 'none');
  const dtBias = lin.registerPlain(`layers.${i}.dt_bias`, layer.dtProjBias);
  return { delta: softplus(g, g.op1('Add', [dtLin, dtBias])), b, c };
}

/**
 * One Mamba block on the residual stream: RMSNorm, in_proj to x and the gate z, causal conv and SiLU, the selective
 * SSM with input-dependent Δ, B, C, the D skip, the SiLU(z) gate, out_proj. Returns the block's output and the
 * residual (DeciMamba may have dropped tokens from it).
 */
export function mambaBlock(
  g: GraphBuilder,
  lin: Linears,
  config: MambaConfig,
  layer: LayerWeights,
  i: number,
  residual: string,
  mix: TimeMixing,
): { hidden: string; residual: string } {
  const prm = layerParams(lin, layer, i);
  const normed = rmsNorm(g, residual, prm.norm, config.normEpsilon);
  const { x, z } = projectIn(g, lin, normed, layer, i, mix);
  const xc = silu(g, mix.conv(x, layer, i));
  const tokens = { xc, ...projectSsmInputs(g, lin, xc, layer, i, config, mix), gate: z, residual };
  const t = mix.select?.(i, tokens) ?? tokens;
  const y = g.op1('Add', [mix.ssm(t, prm.aNMajor, i), g.op1('Mul', [t.xc, prm.d])]);
  const gated = g.op1('Mul', [y, silu(g, t.gate)]);
  return {
    hidden: lin.apply(g, gated, `layers.${i}.out_proj`, layer.outProj, layer.outProjBias),
    residual: t.residual,
  };
}

/** Every layer over the embedded tokens (pre-norm residual, as the reference); returns hidden + residual. */
export function mambaLayers(
  g: GraphBuilder,
  lin: Linears,
  config: MambaConfig,
  weights: MambaWeights,
  embedded: string,
  mix: TimeMixing,
): string {
  let hidden = embedded;
  let residual: string | null = null;
  for (let i = 0; i < config.nLayer; i++) {
    residual = residual ? g.op1('Add', [hidden, residual]) : hidden;
    ({ hidden, residual } = mambaBlock(g, lin, config, weights.layers[i], i, residual, mix));
  }
  return g.op1('Add', [hidden, residual!]);
}

/**
 * exp(x) for x ≤ 0. ORT-web's Exp kernel is scalar; 'tanh' uses exp(x) = (1 + t)/(1 − t), t = tanh(x/2), where
 * Tanh runs MLAS's vectorised kernel (absolute error ≲ 1e-7 for the decay factors in (0, 1]).
 */
export type ExpMode = 'exp' | 'tanh';

export function decayExp(g: GraphBuilder, x: string, mode: ExpMode): string {
  if (mode === 'exp') return g.op1('Exp', [x]);
  const t = g.op1('Tanh', [g.op1('Mul', [x, g.constF32(0.5)])]);
  return g.op1('Div', [g.op1('Add', [t, g.constF32(1)]), g.op1('Sub', [g.constF32(1), t])]);
}

/**
 * One step of the recurrence from h [dState, dInner] (n-major): h' = exp(Δ·A) ⊙ h + (Δ·x) ⊗ B, y = C · h'.
 * Δ, x [1, dInner]; B, C [1, dState]. The prefill scan runs the same update, with the decay and input terms built
 * a chunk at a time (prefill-graph.ts).
 */
export function ssmStep(
  g: GraphBuilder,
  t: Pick<TokenTensors, 'delta' | 'xc' | 'b' | 'c'>,
  h: string,
  aNMajor: string,
  dState: number,
  expMode: ExpMode,
): { h: string; y: string } {
  const decay = decayExp(g, g.op1('Mul', [t.delta, aNMajor]), expMode);
  const bColumn = g.op1('Reshape', [t.b, g.constI64([dState, 1])]);
  const u = g.op1('Mul', [g.op1('Mul', [t.delta, t.xc]), bColumn]);
  const hNew = g.op1('Add', [g.op1('Mul', [decay, h]), u]);
  return { h: hNew, y: g.op1('MatMul', [t.c, hNew]) };
}
