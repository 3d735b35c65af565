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
import { type ExpMode, type TimeMixing, type TokenTensors, decayExp, mambaLayers } from './block.ts';
import { DType, GraphBuilder } from './graph-builder.ts';
import { type Linears, embed, head } from './layers.ts';

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

/**
 * Time mixing over a sequence: the causal conv as dConv shifted multiply-adds, DeciMamba at the decimating layers,
 * the chunked selective scan. Tracks the original positions of the tokens still alive.
 */
function sequenceMixing(
  g: GraphBuilder,
  lin: Linears,
  config: MambaConfig,
  io: ModelInputs,
  opts: PrefillExportOptions,
  outs: BranchOutputs,
  positions: string,
): TimeMixing & { positions: string } {
  const { dInner, dConv } = config;
  return {
    fewestOps: false,
    positions,
    conv(x: string, layer: LayerWeights, i: number) {
      // Over [carried dConv−1 inputs; x] = [T+dConv−1, dInner]; conv1d.weight [dInner, 1, dConv] read as [dInner,
      // dConv] (the step branch's layout), transposed to [dConv, dInner] per tap (folded at session init).
      const convW = lin.registerPlain(`layers.${i}.conv_w`, layer.convWeight, [dInner, dConv]);
      const carried = g.op1(
        'Transpose',
        [g.op1('Slice', [io.convIn[i], g.constI64([1]), g.constI64([dConv]), g.constI64([1])])],
        { perm: [1, 0] },
      );
      const xpad = g.op1('Concat', [carried, x], { axis: 0 });
      // conv state = the last dConv inputs to the conv (pre-decimation), as [dInner, dConv].
      const lastInputs = g.op1('Slice', [xpad, g.constI64([-dConv]), g.constI64([2 ** 62]), g.constI64([0])]);
      outs.set(`conv_state.${i}`, g.op1('Transpose', [lastInputs], { perm: [1, 0] }));
      const convWT = g.op1('Transpose', [convW], { perm: [1, 0] });
      let acc: string | null = null;
      for (let k = 0; k < dConv; k++) {
        const endFromBack = k - (dConv - 1); // 0 means "to the end"
        const tap = g.op1('Slice', [
          xpad,
          g.constI64([k]),
          g.constI64([endFromBack === 0 ? 2 ** 62 : endFromBack]),
          g.constI64([0]),
        ]);
        const term = g.op1('Mul', [tap, g.op1('Gather', [convWT, g.constI64(k)], { axis: 0 })]);
        acc = acc ? g.op1('Add', [acc, term]) : term;
      }
      return layer.convBias ? g.op1('Add', [acc!, lin.registerPlain(`layers.${i}.conv_b`, layer.convBias)]) : acc!;
    },
    select(i: number, t: TokenTensors): TokenTensors {
      if (!opts.decimationLayers.includes(i)) return t;
      const carried = [t.xc, t.delta, t.b, t.c, t.gate, t.residual, this.positions];
      const [xc, delta, b, c, gate, residual, positions] = decimate(g, io.keep, io.protect, i, t.delta, carried);
      this.positions = positions;
      outs.set(`kept.${i}`, positions);
      return { xc, delta, b, c, gate, residual };
    },
    ssm(t: TokenTensors, aNMajor: string, i: number) {
      const hStart = g.op1('Transpose', [io.ssmIn[i]], { perm: [1, 0] });
      const { y, hLast } = selectiveScan(g, config, t.delta, t.xc, t.b, t.c, aNMajor, opts.expMode, hStart);
      outs.set(`ssm_state.${i}`, hLast);
      return y;
    },
  };
}

export function buildPrefillBranch(
  config: MambaConfig,
  weights: MambaWeights,
  lin: Linears,
  g: GraphBuilder,
  io: ModelInputs,
  opts: PrefillExportOptions,
): BranchOutputs {
  const outs: BranchOutputs = new Map();
  const flatIds = g.op1('Reshape', [io.ids, g.constI64([-1])]);
  const length = g.op1('Gather', [g.op1('Shape', [flatIds]), g.constI64(0)], { axis: 0 });
  const mixing = sequenceMixing(g, lin, config, io, opts, outs, g.op1('Range', [g.constI64(0), length, g.constI64(1)]));
  const final = mambaLayers(g, lin, config, weights, embed(g, lin, flatIds, weights), mixing);
  // Original position → final row: scatter row numbers into a −1-filled [L] table, then look the requests up.
  const { positions } = mixing;
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
