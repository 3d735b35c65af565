// The step graph: one token with the recurrent state in and out, for decoding.
//
// Inputs:  input_ids [1, 1] int64, conv_state_in.i [dInner, dConv], ssm_state_in.i [dInner, dState] for every layer.
// Outputs: logits [1, vocab], conv_state.i, ssm_state.i.
import type { MambaConfig, MambaWeights } from '../../engine.ts';
import { DType, type GraphBuilder } from './graph-builder.ts';
import { type Linears, embed, head, rmsNorm, silu } from './layers.ts';
import { type ExpMode, decayExp, inProj, layerParams, projectSsmInputs } from './prefill-graph.ts';

export function buildStepGraph(config: MambaConfig, weights: MambaWeights, lin: Linears, g: GraphBuilder, expMode: ExpMode): void {
  const { dInner, dConv, dState, nLayer, vocabSize } = config;
  const ids = g.input('input_ids', DType.int64, [1, 1]);
  let hidden = embed(g, lin, g.op1('Reshape', [ids, g.constI64([-1])]), weights); // [1, dModel]
  let residual: string | null = null;
  const colShape = g.constI64([dInner, 1]);
  const rowShape = g.constI64([1, dInner]);

  for (let i = 0; i < nLayer; i++) {
    const layer = weights.layers[i];
    const prm = layerParams(lin, layer, i, config);
    const convIn = g.input(`conv_state_in.${i}`, DType.float, [dInner, dConv]);
    const ssmIn = g.input(`ssm_state_in.${i}`, DType.float, [dInner, dState]);

    residual = residual ? g.op1('Add', [hidden, residual]) : hidden;
    const normed = rmsNorm(g, residual, prm.norm, config.normEpsilon);
    const { x, z } = inProj(g, lin, normed, layer, i, dInner);

    // Shift the conv window left by one and append x: the new conv state; the conv output is its dot with the kernel.
    const older = g.op1('Slice', [convIn, g.constI64([1]), g.constI64([dConv]), g.constI64([1])]);
    const window = g.op1('Concat', [older, g.op1('Reshape', [x, colShape])], { axis: 1 });
    g.output(window, `conv_state.${i}`, DType.float, [dInner, dConv]);
    let conv = g.op1('ReduceSum', [g.op1('Mul', [window, prm.convW]), g.constI64([1])], { keepdims: 0 });
    if (prm.convB) conv = g.op1('Add', [conv, prm.convB]);
    const xc = silu(g, g.op1('Reshape', [conv, rowShape])); // [1, dInner]

    const { delta, b, c } = projectSsmInputs(g, lin, xc, layer, i, config, prm.dtBias);
    // Same n-major arithmetic as the prefill scan: h [dState, dInner].
    const hPrev = g.op1('Transpose', [ssmIn], { perm: [1, 0] });
    const decay = decayExp(g, g.op1('Mul', [delta, prm.aNMajor]), expMode);
    const u = g.op1('Mul', [g.op1('Mul', [delta, xc]), g.op1('Transpose', [b], { perm: [1, 0] })]);
    const h = g.op1('Add', [g.op1('Mul', [decay, hPrev]), u]);
    g.output(g.op1('Transpose', [h], { perm: [1, 0] }), `ssm_state.${i}`, DType.float, [dInner, dState]);
    const y = g.op1('MatMul', [c, h]); // [1, dInner]
    const yd = g.op1('Add', [y, g.op1('Mul', [xc, prm.d])]);
    hidden = lin.apply(g, g.op1('Mul', [yd, silu(g, z)]), `layers.${i}.out_proj`, layer.outProj, layer.outProjBias);
  }
  const final = g.op1('Add', [hidden, residual!]);
  g.output(head(g, lin, final, config, weights), 'logits', DType.float, [1, vocabSize]);
}
