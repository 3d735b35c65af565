// The step branch: one token continuing from the given state, for decoding (the If takes it when L = 1).
// Same inputs and outputs as the prefill branch; it returns the logits of its single token, logit_rows [0], and
// kept.i = [0] (one token is never decimated).
import type { MambaConfig, MambaWeights } from '../../engine.ts';
import type { GraphBuilder } from './graph-builder.ts';
import { type Linears, embed, head, rmsNorm, silu } from './layers.ts';
import {
  type BranchOutputs,
  type ExpMode,
  type ModelInputs,
  decayExp,
  inProj,
  layerParams,
  projectSsmInputs,
} from './prefill-graph.ts';

export function buildStepBranch(
  config: MambaConfig,
  weights: MambaWeights,
  lin: Linears,
  g: GraphBuilder,
  io: ModelInputs,
  expMode: ExpMode,
  decimationLayers: number[],
): BranchOutputs {
  const { dInner, dConv, nLayer } = config;
  const outs: BranchOutputs = new Map();
  let hidden = embed(g, lin, g.op1('Reshape', [io.ids, g.constI64([-1])]), weights); // [1, dModel]
  let residual: string | null = null;
  const colShape = g.constI64([dInner, 1]);

  for (let i = 0; i < nLayer; i++) {
    const layer = weights.layers[i];
    const prm = layerParams(lin, layer, i, config);
    residual = residual ? g.op1('Add', [hidden, residual]) : hidden;
    const normed = rmsNorm(g, residual, prm.norm, config.normEpsilon);
    const { x, z } = inProj(g, lin, normed, layer, i, dInner);

    // Shift the conv window left by one and append x: the new conv state; the conv output is its dot with the kernel.
    const older = g.op1('Slice', [io.convIn[i], g.constI64([1]), g.constI64([dConv]), g.constI64([1])]);
    const window = g.op1('Concat', [older, g.op1('Reshape', [x, colShape])], { axis: 1 });
    outs.set(`conv_state.${i}`, window);
    let conv = g.op1('ReduceSum', [g.op1('Mul', [window, prm.convW]), g.constI64([1])], { keepdims: 0 });
    if (prm.convB) conv = g.op1('Add', [conv, prm.convB]);
    const xc = silu(g, g.op1('Unsqueeze', [conv, g.constI64([0])])); // [1, dInner]

    const { delta, b, c } = projectSsmInputs(g, lin, xc, layer, i, config, prm.dtBias);
    // Same n-major arithmetic as the prefill scan: h [dState, dInner].
    const hPrev = g.op1('Transpose', [io.ssmIn[i]], { perm: [1, 0] });
    const decay = decayExp(g, g.op1('Mul', [delta, prm.aNMajor]), expMode);
    const u = g.op1('Mul', [g.op1('Mul', [delta, xc]), g.op1('Transpose', [b], { perm: [1, 0] })]);
    const h = g.op1('Add', [g.op1('Mul', [decay, hPrev]), u]);
    outs.set(`ssm_state.${i}`, g.op1('Transpose', [h], { perm: [1, 0] }));
    const y = g.op1('MatMul', [c, h]); // [1, dInner]
    const yd = g.op1('Add', [y, g.op1('Mul', [xc, prm.d])]);
    hidden = lin.apply(g, g.op1('Mul', [yd, silu(g, z)]), `layers.${i}.out_proj`, layer.outProj, layer.outProjBias);
    if (decimationLayers.includes(i)) outs.set(`kept.${i}`, g.constI64([0]));
  }
  outs.set('logits', head(g, lin, g.op1('Add', [hidden, residual!]), config, weights));
  outs.set('logit_rows', g.constI64([0]));
  return outs;
}
