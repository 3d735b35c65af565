// The prefill branch: a prompt (or a chunk of one) continuing from a given state.
//
// Reads the model inputs (see export-model.ts): input_ids [1, L], protect [], keep [nLayer] (context tokens each layer
// keeps; −1 = no decimation there; computed by the engine from the DecimationConfig), logit_positions [P] (original
// positions to return logits for), conv_state_in.i / ssm_state_in.i (zeros for a fresh prompt; decimation is only
// defined from the zero state and the engine only asks for it then).
// Produces: logits [P, vocab], logit_rows [P] (row of each requested position in the final sequence, −1 when
// decimation dropped it), conv_state.i, ssm_state.i, and kept.i (original positions alive after layer i) for every
// decimation-capable layer i.
//
// Everything parallel over time runs as [L, d] matrix ops; only the recurrence h_t = exp(Δ_t·A)⊙h_{t−1} + Δ_t·x_t·B_t,
// y_t = h_t·C_t runs in ONNX Scans whose bodies touch chunk-sized tensors, so nothing of size L·dInner·dState is ever
// materialised.
import type { LayerWeights, MambaConfig, MambaWeights } from '../../engine.ts';
import { DType, GraphBuilder } from './graph-builder.ts';
import { Linears, embed, head, negExpA, rmsNorm, rows, silu, transpose2d } from './layers.ts';

export interface MixerInputs {
  config: MambaConfig;
  lin: Linears;
  layer: LayerWeights;
  index: number;
}

/** Registers a layer's small fp32 tensors (conv, A, D, dt bias) and returns their names. */
export function layerParams(lin: Linears, layer: LayerWeights, i: number, config: MambaConfig) {
  const p = `layers.${i}`;
  return {
    norm: lin.registerPlain(`${p}.norm`, layer.norm),
    // conv1d.weight [dInner, 1, dConv] → [dInner, dConv]; for prefill its transpose [dConv, dInner] per tap.
    convW: lin.registerPlain(`${p}.conv_w`, layer.convWeight, [config.dInner, config.dConv]),
    convB: layer.convBias ? lin.registerPlain(`${p}.conv_b`, layer.convBias) : null,
    dtBias: lin.registerPlain(`${p}.dt_bias`, layer.dtProjBias),
    // A = −exp(A_log) transposed to [dState, dInner]: the scans keep h n-major.
    aNMajor: lin.registerPlain(`${p}.A_t`, transpose2d(negExpA(layer.aLog))),
    d: lin.registerPlain(`${p}.D`, layer.d),
  };
}

/** x (dInner) and z (dInner) halves of in_proj, as two GEMMs so no Split copy is needed. */
export function inProj(g: GraphBuilder, lin: Linears, h: string, layer: LayerWeights, i: number, dInner: number) {
  const bias = layer.inProjBias;
  const x = lin.apply(
    g,
    h,
    `layers.${i}.in_proj_x`,
    rows(layer.inProj, 0, dInner),
    bias ? rows1(bias, 0, dInner) : null,
  );
  const z = lin.apply(
    g,
    h,
    `layers.${i}.in_proj_z`,
    rows(layer.inProj, dInner, dInner),
    bias ? rows1(bias, dInner, dInner) : null,
  );
  return { x, z };
}

function rows1(t: { shape: number[]; data: Float32Array }, start: number, count: number) {
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

/** x_proj → (dt_low, B, C), then Δ = softplus(dt_proj(dt_low) + bias). All [T, ·]. */
export function projectSsmInputs(
  g: GraphBuilder,
  lin: Linears,
  xc: string,
  layer: LayerWeights,
  i: number,
  config: MambaConfig,
  dtBias: string,
) {
  const { dtRank, dState } = config;
  const xdbl = lin.apply(g, xc, `layers.${i}.x_proj`, layer.xProj, null, 'none');
  const [dtLow, b, c] = g.op('Split', [xdbl, g.constI64([dtRank, dState, dState])], { axis: 1 }, 3);
  const dtLin = lin.apply(g, dtLow, `layers.${i}.dt_proj`, layer.dtProjWeight, null, 'none');
  const delta = softplus(g, g.op1('Add', [dtLin, dtBias]));
  return { delta, b, c };
}

/**
 * DeciMamba (official max_p) as an If node: when keep ≥ 0, score context tokens by ‖Δ_t‖₂, keep the `keep` best
 * (TopK breaks ties to the lower index), sort them, append the protected tail, and gather every per-token tensor.
 */
function decimate(
  g: GraphBuilder,
  keepAll: string,
  protect: string,
  i: number,
  delta: string,
  carried: string[],
): string[] {
  const keep = g.op1('Gather', [keepAll, g.constI64(i)], { axis: 0 });
  const cond = g.op1('GreaterOrEqual', [keep, g.constI64(0)]);

  const then = new GraphBuilder(`decimate_${i}`, g);
  const len = then.op1('Gather', [then.op1('Shape', [delta]), then.constI64(0)], { axis: 0 });
  const tail = then.op1('Min', [protect, len]);
  const ctxLen = then.op1('Sub', [len, tail]);
  const scores = then.op1('ReduceL2', [delta], { axes: [1], keepdims: 0 });
  const ctxScores = then.op1('Slice', [
    scores,
    then.constI64([0]),
    then.op1('Unsqueeze', [ctxLen, then.constI64([0])]),
    then.constI64([0]),
  ]);
  const k = then.op1('Unsqueeze', [keep, then.constI64([0])]);
  const [, best] = then.op('TopK', [ctxScores, k], { axis: 0, largest: 1, sorted: 1 }, 2);
  // Ascending order of the kept indices: TopK (smallest first) on the indices themselves.
  const [bestSorted] = then.op('TopK', [best, k], { axis: 0, largest: 0, sorted: 1 }, 2);
  const tailIdx = then.op1('Range', [ctxLen, len, then.constI64(1)]);
  const sel = then.op1('Concat', [bestSorted, tailIdx], { axis: 0 });
  const elseG = new GraphBuilder(`no_decimate_${i}`, g);
  const outs = carried.map((v) => g.fresh(`dec${i}`));
  carried.forEach((v, j) => {
    then.output(
      then.op1('Gather', [v, sel], { axis: 0 }),
      `${outs[j]}_then`,
      j === carried.length - 1 ? DType.int64 : DType.float,
      null,
    );
    elseG.output(
      elseG.op1('Identity', [v]),
      `${outs[j]}_else`,
      j === carried.length - 1 ? DType.int64 : DType.float,
      null,
    );
  });
  g.nodes.push({
    opType: 'If',
    input: [cond],
    output: outs,
    name: g.fresh('n_If'),
    attribute: [
      { name: 'then_branch', type: 5, g: then.build() },
      { name: 'else_branch', type: 5, g: elseG.build() },
    ],
  });
  return outs;
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

/** Time steps per outer Scan iteration: the decay/input terms of a chunk are built with a few large ops. */
export const SCAN_CHUNK = 32;

/**
 * The selective scan over time, chunked: an outer Scan walks chunks of SCAN_CHUNK steps; per chunk it builds
 * exp(Δ_t·A) and Δ_t·x_t·B_t as [T, dState, dInner] tensors (bounded memory: 2·T·dInner·dState floats), then an
 * inner Scan does only h = decay_t ⊙ h + u_t and y_t = C_t · h. The state is kept n-major [dState, dInner] so
 * every broadcast runs along the long dInner axis. Returns y [L, dInner] (before D and the gate) and the last h as
 * [dInner, dState].
 */
export function selectiveScan(
  g: GraphBuilder,
  config: MambaConfig,
  delta: string,
  xc: string,
  b: string,
  c: string,
  aNMajor: string,
  expMode: ExpMode,
  hStart: string,
) {
  const { dInner, dState } = config;
  const T = SCAN_CHUNK;
  const len = g.op1('Gather', [g.op1('Shape', [delta]), g.constI64(0)], { axis: 0 });
  // Zero padding to whole chunks: Δ = 0 gives decay 1 and input 0, so padded steps leave h unchanged.
  const padLen = g.op1('Mod', [g.op1('Sub', [g.constI64(T), g.op1('Mod', [len, g.constI64(T)])]), g.constI64(T)]);
  const pads = g.op1('Concat', [g.constI64([0, 0]), g.op1('Unsqueeze', [padLen, g.constI64([0])]), g.constI64([0])], {
    axis: 0,
  });
  const chunked = (v: string, shape: number[]) => g.op1('Reshape', [g.op1('Pad', [v, pads]), g.constI64(shape)]);
  const dtC = chunked(delta, [-1, T, 1, dInner]);
  const dtxC = chunked(g.op1('Mul', [delta, xc]), [-1, T, 1, dInner]);
  const bC = chunked(b, [-1, T, dState, 1]);
  const cC = chunked(c, [-1, T, 1, dState]);
  const h0 = hStart; // [dState, dInner]

  const inner = new GraphBuilder('scan_step', g);
  const hIn = inner.input(inner.fresh('h_in'), DType.float, [dState, dInner]);
  const decayT = inner.input(inner.fresh('decay_t'), DType.float, [dState, dInner]);
  const uT = inner.input(inner.fresh('u_t'), DType.float, [dState, dInner]);
  const cT = inner.input(inner.fresh('c_t'), DType.float, [1, dState]);
  const hNew = inner.op1('Add', [inner.op1('Mul', [decayT, hIn]), uT]);
  inner.output(hNew, inner.fresh('h_out'), DType.float, [dState, dInner]);
  inner.output(inner.op1('MatMul', [cT, hNew]), inner.fresh('y_t'), DType.float, [1, dInner]);

  const outer = new GraphBuilder('scan_chunk', g);
  const hChunk = outer.input(outer.fresh('h_chunk'), DType.float, [dState, dInner]);
  const dtT = outer.input(outer.fresh('dt_c'), DType.float, [T, 1, dInner]);
  const dtxT = outer.input(outer.fresh('dtx_c'), DType.float, [T, 1, dInner]);
  const bT = outer.input(outer.fresh('b_c'), DType.float, [T, dState, 1]);
  const cTs = outer.input(outer.fresh('c_c'), DType.float, [T, 1, dState]);
  const decay = decayExp(outer, outer.op1('Mul', [dtT, aNMajor]), expMode); // [T, dState, dInner]
  const u = outer.op1('Mul', [dtxT, bT]); // [T, dState, dInner]
  const [hLastChunk, ysChunk] = outer.op(
    'Scan',
    [hChunk, decay, u, cTs],
    { body: inner.build(), num_scan_inputs: 3 },
    2,
  );
  outer.output(hLastChunk, outer.fresh('h_chunk_out'), DType.float, [dState, dInner]);
  outer.output(ysChunk, outer.fresh('y_chunk'), DType.float, [T, 1, dInner]);

  const [hLast, ys] = g.op('Scan', [h0, dtC, dtxC, bC, cC], { body: outer.build(), num_scan_inputs: 4 }, 2);
  const yPadded = g.op1('Reshape', [ys, g.constI64([-1, dInner])]);
  const y = g.op1('Slice', [yPadded, g.constI64([0]), g.op1('Unsqueeze', [len, g.constI64([0])]), g.constI64([0])]);
  return { y, hLast: g.op1('Transpose', [hLast], { perm: [1, 0] }) };
}

export interface PrefillExportOptions {
  /** Layers that get a decimation block (an If node); others can never decimate. */
  decimationLayers: number[];
  expMode: ExpMode;
}

/** Names of the model inputs, shared by both branches (they are outer-scope values inside the If). */
export interface ModelInputs {
  ids: string;
  protect: string;
  keep: string;
  logitPositions: string;
  convIn: string[];
  ssmIn: string[];
}

/** Branch outputs by model output name (logits, logit_rows, conv_state.i, ssm_state.i, kept.i). */
export type BranchOutputs = Map<string, string>;

export function buildPrefillBranch(
  config: MambaConfig,
  weights: MambaWeights,
  lin: Linears,
  g: GraphBuilder,
  io: ModelInputs,
  opts: PrefillExportOptions,
): BranchOutputs {
  const { dInner, dConv, nLayer } = config;
  const outs: BranchOutputs = new Map();
  const flatIds = g.op1('Reshape', [io.ids, g.constI64([-1])]);
  let hidden = embed(g, lin, flatIds, weights);
  let residual: string | null = null;
  // Original positions of the tokens still alive; gathered alongside the activations at decimating layers.
  const length = g.op1('Gather', [g.op1('Shape', [flatIds]), g.constI64(0)], { axis: 0 });
  let positions = g.op1('Range', [g.constI64(0), length, g.constI64(1)]);

  for (let i = 0; i < nLayer; i++) {
    const layer = weights.layers[i];
    const prm = layerParams(lin, layer, i, config);
    residual = residual ? g.op1('Add', [hidden, residual]) : hidden;
    const normed = rmsNorm(g, residual, prm.norm, config.normEpsilon);
    const { x, z } = inProj(g, lin, normed, layer, i, dInner);

    // Causal depthwise conv as dConv shifted multiply-adds over [carried dConv−1 inputs; x] = [T+dConv−1, dInner].
    const carried = g.op1(
      'Transpose',
      [g.op1('Slice', [io.convIn[i], g.constI64([1]), g.constI64([dConv]), g.constI64([1])])],
      { perm: [1, 0] },
    );
    const xpad = g.op1('Concat', [carried, x], { axis: 0 });
    const convWT = g.op1('Transpose', [prm.convW], { perm: [1, 0] }); // [dConv, dInner], folded at session init
    let acc: string | null = null;
    for (let k = 0; k < dConv; k++) {
      const endFromBack = k - (dConv - 1); // 0 means "to the end"
      const tap = g.op1('Slice', [
        xpad,
        g.constI64([k]),
        g.constI64([endFromBack === 0 ? 2 ** 62 : endFromBack]),
        g.constI64([0]),
      ]);
      const wk = g.op1('Gather', [convWT, g.constI64(k)], { axis: 0 });
      const term = g.op1('Mul', [tap, wk]);
      acc = acc ? g.op1('Add', [acc, term]) : term;
    }
    if (prm.convB) acc = g.op1('Add', [acc!, prm.convB]);
    let xc = silu(g, acc!);
    // conv state = the last dConv inputs to the conv (pre-decimation), as [dInner, dConv].
    const lastInputs = g.op1('Slice', [xpad, g.constI64([-dConv]), g.constI64([2 ** 62]), g.constI64([0])]);
    outs.set(`conv_state.${i}`, g.op1('Transpose', [lastInputs], { perm: [1, 0] }));

    const ssmIn = projectSsmInputs(g, lin, xc, layer, i, config, prm.dtBias);
    let { delta, b, c } = ssmIn;
    let gate = z;
    if (opts.decimationLayers.includes(i)) {
      [xc, delta, b, c, gate, residual, positions] = decimate(g, io.keep, io.protect, i, delta, [
        xc,
        delta,
        b,
        c,
        gate,
        residual,
        positions,
      ]);
      outs.set(`kept.${i}`, positions);
    }
    const hStart = g.op1('Transpose', [io.ssmIn[i]], { perm: [1, 0] });
    const { y, hLast } = selectiveScan(g, config, delta, xc, b, c, prm.aNMajor, opts.expMode, hStart);
    outs.set(`ssm_state.${i}`, hLast);
    const yd = g.op1('Add', [y, g.op1('Mul', [xc, prm.d])]);
    const gated = g.op1('Mul', [yd, silu(g, gate)]);
    hidden = lin.apply(g, gated, `layers.${i}.out_proj`, layer.outProj, layer.outProjBias);
  }
  const final = g.op1('Add', [hidden, residual!]);
  // Original position → final row: scatter row numbers into a −1-filled [L] table, then look the requests up.
  const finalLen = g.op1('Gather', [g.op1('Shape', [positions]), g.constI64(0)], { axis: 0 });
  const unknown = g.op1('Expand', [g.constI64([-1]), g.op1('Unsqueeze', [length, g.constI64([0])])]);
  const rowOf = g.op1(
    'ScatterElements',
    [unknown, positions, g.op1('Range', [g.constI64(0), finalLen, g.constI64(1)])],
    { axis: 0 },
  );
  const rowsOut = g.op1('Gather', [rowOf, io.logitPositions], { axis: 0 });
  outs.set('logit_rows', rowsOut);
  const picked = g.op1('Gather', [final, g.op1('Max', [rowsOut, g.constI64(0)])], { axis: 0 });
  outs.set('logits', head(g, lin, picked, config, weights));
  return outs;
}
