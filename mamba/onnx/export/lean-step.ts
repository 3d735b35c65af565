// The lean decode graph (its own model and session, no If): one token in, the greedy next token, its logits and the
// new state out. The recurrent state of every layer is packed into one tensor [n_layer, d_conv + d_state, d_inner]:
// rows 0..d_conv−1 are the conv window (oldest first), the rest is h kept n-major [d_state, d_inner], the layout the
// update uses, so no transposes run per step. One input and three outputs cross the JS↔WASM boundary.
import type { LayerWeights, MambaConfig, MambaWeights } from '../../engine.ts';
import { type ExpMode, type TokenTensors, mambaLayers, ssmStep } from './block.ts';
import { DType, GraphBuilder, encodeModel } from './graph-builder.ts';
import { Linears, type Quantization, embed, head, transpose2d } from './layers.ts';

export const STEP_FILE = 'step.onnx';

/** Packed state shape for a config: [n_layer, d_conv + d_state, d_inner]. */
export const packedStateDims = (c: MambaConfig) => [c.nLayer, c.dConv + c.dState, c.dInner];

export function buildLeanStepModel(
  config: MambaConfig,
  weights: MambaWeights,
  quantization: Quantization,
  expMode: ExpMode,
): Uint8Array {
  const { dInner, dConv, dState, nLayer, vocabSize } = config;
  const g = new GraphBuilder('mamba_step');
  const token = g.input('token', DType.int64, [1]);
  const state = g.input('state', DType.float, packedStateDims(config));
  const lin = new Linears(g, quantization);

  const embedded = embed(g, lin, token, weights); // [1, dModel]
  const perLayer = g.op('Split', [state, g.constI64(new Array(nLayer).fill(1))], { axis: 0 }, nLayer);
  const carried: { window: string; hPrev: string }[] = []; // per layer, from conv to the SSM
  const newStates: string[] = [];
  const final = mambaLayers(g, lin, config, weights, embedded, {
    fewestOps: true,
    conv(x: string, layer: LayerWeights, i: number) {
      const s = g.op1('Reshape', [perLayer[i], g.constI64([dConv + dState, dInner])]);
      const [, keptConv, hPrev] = g.op('Split', [s, g.constI64([1, dConv - 1, dState])], { axis: 0 }, 3);
      const window = g.op1('Concat', [keptConv, x], { axis: 0 }); // [dConv, dInner], oldest first
      carried[i] = { window, hPrev };
      const convWT = lin.registerPlain(
        `layers.${i}.conv_w_t`,
        transpose2d({ shape: [dInner, dConv], data: layer.convWeight.data }),
      );
      const conv = g.op1('ReduceSum', [g.op1('Mul', [window, convWT]), g.constI64([0])], { keepdims: 1 });
      return layer.convBias ? g.op1('Add', [conv, lin.registerPlain(`layers.${i}.conv_b`, layer.convBias)]) : conv;
    },
    ssm(t: TokenTensors, aNMajor: string, i: number) {
      const { h, y } = ssmStep(g, t, carried[i].hPrev, aNMajor, dState, expMode);
      newStates.push(g.op1('Concat', [carried[i].window, h], { axis: 0 }));
      return y;
    },
  });
  // The tied head keeps the shared [vocab, d] embedding (transB): its own transposed copy made a step 0.13 ms faster
  // but step.onnx 28 MiB, over a Worker asset's 25 MiB.
  const logits = head(g, lin, final, config, weights); // [1, vocab]
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
