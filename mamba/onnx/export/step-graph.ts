// The step branch: one token continuing from the given state, for decoding (the If takes it when L = 1).
// Same inputs and outputs as the prefill branch; it returns the logits of its single token, logit_rows [0], and
// kept.i = [0] (one token is never decimated).
import type { LayerWeights, MambaConfig, MambaWeights } from '../../engine.ts';
import { type ExpMode, type TimeMixing, type TokenTensors, mambaLayers, ssmStep } from './block.ts';
import type { GraphBuilder } from './graph-builder.ts';
import { type Linears, embed, head } from './layers.ts';
import type { BranchOutputs, ModelInputs } from './prefill-graph.ts';

export function buildStepBranch(
  config: MambaConfig,
  weights: MambaWeights,
  lin: Linears,
  g: GraphBuilder,
  io: ModelInputs,
  expMode: ExpMode,
  decimationLayers: number[],
): BranchOutputs {
  const { dInner, dConv, dState } = config;
  const outs: BranchOutputs = new Map();
  const colShape = g.constI64([dInner, 1]);
  const mixing: TimeMixing = {
    fewestOps: false,
    // Shift the conv window [dInner, dConv] left by one and append x: the new conv state; the conv output is its
    // dot with the kernel (the prefill branch's conv_w).
    conv(x: string, layer: LayerWeights, i: number) {
      const convW = lin.registerPlain(`layers.${i}.conv_w`, layer.convWeight, [dInner, dConv]);
      const older = g.op1('Slice', [io.convIn[i], g.constI64([1]), g.constI64([dConv]), g.constI64([1])]);
      const window = g.op1('Concat', [older, g.op1('Reshape', [x, colShape])], { axis: 1 });
      outs.set(`conv_state.${i}`, window);
      let conv = g.op1('ReduceSum', [g.op1('Mul', [window, convW]), g.constI64([1])], { keepdims: 0 });
      if (layer.convBias) conv = g.op1('Add', [conv, lin.registerPlain(`layers.${i}.conv_b`, layer.convBias)]);
      return g.op1('Unsqueeze', [conv, g.constI64([0])]); // [1, dInner]
    },
    // One token is never decimated: a decimating layer keeps it (kept.i = [0]).
    select(i: number, t: TokenTensors) {
      if (decimationLayers.includes(i)) outs.set(`kept.${i}`, g.constI64([0]));
      return t;
    },
    // The state input is [dInner, dState]; the update keeps h n-major like the prefill scan.
    ssm(t: TokenTensors, aNMajor: string, i: number) {
      const hPrev = g.op1('Transpose', [io.ssmIn[i]], { perm: [1, 0] });
      const { h, y } = ssmStep(g, t, hPrev, aNMajor, dState, expMode);
      outs.set(`ssm_state.${i}`, g.op1('Transpose', [h], { perm: [1, 0] }));
      return y;
    },
  };
  const embedded = embed(g, lin, g.op1('Reshape', [io.ids, g.constI64([-1])]), weights); // [1, dModel]
  const final = mambaLayers(g, lin, config, weights, embedded, mixing);
  outs.set('logits', head(g, lin, final, config, weights));
  outs.set('logit_rows', g.constI64([0]));
  return outs;
}
