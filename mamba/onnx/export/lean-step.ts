// The lean decode graph (its own model and session, no If): one token in, the greedy next token, its logits and the
// new state out. The recurrent state of every layer is packed into one tensor [n_layer, d_conv + d_state, d_inner]:
// rows 0..d_conv−1 are the conv window (oldest first), the rest is h kept n-major [d_state, d_inner], the layout the
// update uses, so no transposes run per step. One input and three outputs cross the JS↔WASM boundary.
import type { MambaConfig, MambaWeights } from '../../engine.ts';
import { DType, GraphBuilder, encodeModel } from './graph-builder.ts';
import { Linears, type Quantization, embed, head, negExpA, rmsNorm, silu, transpose2d } from './layers.ts';
import { type ExpMode, decayExp } from './prefill-graph.ts';

export const STEP_FILE = 'step.onnx';

/** Packed state shape for a config: [n_layer, d_conv + d_state, d_inner]. */
export const packedStateDims = (c: MambaConfig) => [c.nLayer, c.dConv + c.dState, c.dInner];

export function buildLeanStepModel(
  config: MambaConfig,
  weights: MambaWeights,
  quantization: Quantization,
  expMode: ExpMode,
): Uint8Array {
  const { dInner, dConv, dState, dtRank, nLayer, vocabSize } = config;
  const rowsPerLayer = dConv + dState;
  const g = new GraphBuilder('mamba_step');
  const token = g.input('token', DType.int64, [1]);
  const state = g.input('state', DType.float, packedStateDims(config));
  const lin = new Linears(g, quantization);

  let hidden = embed(g, lin, token, weights); // [1, dModel]
  let residual: string | null = null;
  const perLayer = g.op('Split', [state, g.constI64(new Array(nLayer).fill(1))], { axis: 0 }, nLayer);
  const newStates: string[] = [];
  for (let i = 0; i < nLayer; i++) {
    const layer = weights.layers[i];
    const p = `layers.${i}`;
    const norm = lin.registerPlain(`${p}.norm`, layer.norm);
    const aNMajor = lin.registerPlain(`${p}.A_t`, transpose2d(negExpA(layer.aLog)));
    const dSkip = lin.registerPlain(`${p}.D`, layer.d);
    residual = residual ? g.op1('Add', [hidden, residual]) : hidden;
    const normed = rmsNorm(g, residual, norm, config.normEpsilon);
    // in_proj as one GEMM [1, 2·dInner], split into x and z.
    const xz = lin.apply(g, normed, `layers.${i}.in_proj`, layer.inProj, layer.inProjBias);
    const [x, z] = g.op('Split', [xz, g.constI64([dInner, dInner])], { axis: 1 }, 2);

    const s = g.op1('Reshape', [perLayer[i], g.constI64([rowsPerLayer, dInner])]);
    const [, keptConv, hPrev] = g.op('Split', [s, g.constI64([1, dConv - 1, dState])], { axis: 0 }, 3);
    const window = g.op1('Concat', [keptConv, x], { axis: 0 }); // [dConv, dInner], oldest first
    const convWT = lin.registerPlain(
      `${p}.conv_w_t`,
      transpose2d({ shape: [dInner, dConv], data: layer.convWeight.data }),
    );
    let conv = g.op1('ReduceSum', [g.op1('Mul', [window, convWT]), g.constI64([0])], { keepdims: 1 }); // [1, dInner]
    if (layer.convBias) conv = g.op1('Add', [conv, lin.registerPlain(`${p}.conv_b`, layer.convBias)]);
    const xc = silu(g, conv);

    const xdbl = lin.apply(g, xc, `layers.${i}.x_proj`, layer.xProj, null, 'none');
    const [dtLow, b, c] = g.op('Split', [xdbl, g.constI64([dtRank, dState, dState])], { axis: 1 }, 3);
    // dt bias inside the GEMM, and ORT's own Softplus: fewer ops matter more than kernel speed on one row.
    const dt = lin.apply(g, dtLow, `layers.${i}.dt_proj`, layer.dtProjWeight, layer.dtProjBias, 'none');
    const delta = g.op1('Softplus', [dt]); // [1, dInner]
    const decay = decayExp(g, g.op1('Mul', [delta, aNMajor]), expMode); // [dState, dInner]
    const u = g.op1('Mul', [g.op1('Mul', [delta, xc]), g.op1('Reshape', [b, g.constI64([dState, 1])])]);
    const h = g.op1('Add', [g.op1('Mul', [decay, hPrev]), u]);
    newStates.push(g.op1('Concat', [window, h], { axis: 0 }));
    const y = g.op1('Add', [g.op1('MatMul', [c, h]), g.op1('Mul', [xc, dSkip])]);
    hidden = lin.apply(g, g.op1('Mul', [y, silu(g, z)]), `layers.${i}.out_proj`, layer.outProj, layer.outProjBias);
  }
  // The tied head keeps the shared [vocab, d] embedding (transB): its own transposed copy made a step 0.13 ms faster
  // but step.onnx 28 MiB, over a Worker asset's 25 MiB.
  const logits = head(g, lin, g.op1('Add', [hidden, residual!]), config, weights); // [1, vocab]
  g.output(g.op1('ArgMax', [logits], { axis: 1, keepdims: 0, select_last_index: 0 }), 'next_token', DType.int64, [1]);
  g.output(logits, 'logits', DType.float, [1, vocabSize]);
  const packed = g.op1('Reshape', [g.op1('Concat', newStates, { axis: 0 }), g.constI64(packedStateDims(config))]);
  g.output(packed, 'state_out', DType.float, packedStateDims(config));
  return encodeModel(
    g.build(),
    [
      { domain: '', version: 17 },
      { domain: 'com.microsoft', version: 1 },
    ],
    `Mamba-1 lean step d_model=${config.dModel} n_layer=${nLayer} quantization=${quantization}`,
  );
}
