// Graph fragments shared by the prefill and step graphs: weights as initializers, linear layers (fp32 or
// quantized), RMSNorm, SiLU. All activations are 2-D [tokens, features], time-major like PyTorch's [L, d].
import type { MambaConfig, MambaWeights, Tensor } from '../../engine.ts';
import { DType, type GraphBuilder, f } from './graph-builder.ts';
import { quantizeInt8PerRow, quantizeBlockwise4 } from './quantize.ts';
import { transpose2d } from '../../weights.ts';

export { transpose2d }; // lean-step.ts and block.ts take it from here with the other layer helpers

/**
 * none: fp32. int8: per-output-channel int8 weights, dequantized inside the graph (activations stay fp32; accurate).
 * int8-dynamic: the same weights × activations quantized per tensor at run time (MatMulInteger; faster, coarser).
 * int4: MatMulNBits, 4-bit blocks of 32 with an fp32 scale and a 4-bit zero point each.
 */
export type Quantization = 'none' | 'int8' | 'int8-dynamic' | 'int4';
export const QUANTIZATIONS: Quantization[] = ['none', 'int8', 'int8-dynamic', 'int4'];

/** Block size for MatMulNBits (int4): 32 values share a scale, the common choice for small models. */
export const INT4_BLOCK = 32;

/** Rows [start, start+count) of a 2-D tensor. */
export function rows(t: Tensor, start: number, count: number): Tensor {
  const cols = t.shape[1];
  return { shape: [count, cols], data: t.data.subarray(start * cols, (start + count) * cols) };
}

/**
 * Emits linear layers `y = x · Wᵀ + b` for weights in PyTorch layout [out, in], registering each weight once in the
 * root graph so subgraphs (Scan/If bodies) and multiple call sites share it.
 */
export class Linears {
  private readonly registered = new Map<string, string[]>();

  constructor(
    private readonly root: GraphBuilder,
    readonly quantization: Quantization,
  ) {}

  /** Registers a weight (idempotent) and returns the initializer names it needs. */
  private register(name: string, w: Tensor, mode: Quantization): string[] {
    const key = `${name}#${mode}`; // not registerPlain's key: a matrix's GEMM layout differs from its plain one
    const cached = this.registered.get(key);
    if (cached) return cached;
    const [n, k] = w.shape;
    let names: string[];
    if (mode === 'none') {
      // Stored transposed, [in, out]: MLAS runs a one-row GEMM with an untransposed B as a GEMV, while a
      // transposed B is packed on every call (a decode step 30% slower; no difference at 512 rows).
      names = [this.root.tensor(`${name}.t`, DType.float, [k, n], transpose2d(w).data)];
    } else if (mode === 'int8') {
      const q = quantizeInt8PerRow(w);
      names = [
        this.root.tensor(`${name}.q8`, DType.int8, [n, k], q.values),
        this.root.tensor(`${name}.scale`, DType.float, [n], q.scales),
      ];
    } else if (mode === 'int8-dynamic') {
      // MatMulInteger wants B as [K, N] int8 with a per-column zero point; scales are applied after.
      const q = quantizeInt8PerRow(w);
      const bT = new Int8Array(k * n);
      for (let r = 0; r < n; r++) for (let c = 0; c < k; c++) bT[c * n + r] = q.values[r * k + c];
      names = [
        this.root.tensor(`${name}.q8`, DType.int8, [k, n], bT),
        this.root.tensor(`${name}.scale`, DType.float, [n], q.scales),
        this.root.tensor(`${name}.zp`, DType.int8, [n], new Int8Array(n)),
      ];
    } else {
      const q = quantizeBlockwise4(w, INT4_BLOCK);
      names = [
        this.root.tensor(`${name}.q4`, DType.uint8, [n, q.blocksPerRow, INT4_BLOCK / 2], q.packed),
        this.root.tensor(`${name}.scale`, DType.float, [n * q.blocksPerRow], q.scales),
        this.root.tensor(`${name}.zp`, DType.uint8, [n * Math.ceil(q.blocksPerRow / 2)], q.zeroPoints),
      ];
    }
    this.registered.set(key, names);
    return names;
  }

  /**
   * y = x Wᵀ (+ b). `mode` overrides the model's quantization for a matrix (small ones stay fp32: their error
   * costs more than their size saves).
   */
  apply(g: GraphBuilder, x: string, name: string, w: Tensor, bias: Tensor | null, mode = this.quantization): string {
    const [n, k] = w.shape;
    const names = this.register(name, w, mode);
    const b = bias ? this.registerPlain(`${name}.bias`, bias) : null;
    let y: string;
    if (mode === 'none') {
      return g.op1('Gemm', b ? [x, names[0], b] : [x, names[0]]);
    } else if (mode === 'int8') {
      // Weight-only: int8 at rest (a quarter of the memory), dequantized per call next to the fp32 GEMM.
      y = g.op1('Gemm', [x, g.op1('DequantizeLinear', [names[0], names[1]], { axis: 0 })], { transB: 1 });
    } else if (mode === 'int8-dynamic') {
      // Dynamic per-tensor uint8 activations × per-channel int8 weights; ORT fuses this into DynamicQuantizeMatMul.
      const [xq, xScale, xZp] = g.op('DynamicQuantizeLinear', [x], {}, 3);
      const acc = g.op1('MatMulInteger', [xq, names[0], xZp, names[2]]);
      const accF = g.op1('Cast', [acc], { to: DType.float });
      y = g.op1('Mul', [accF, g.op1('Mul', [xScale, names[1]])]);
    } else {
      y = g.op1(
        'MatMulNBits',
        [x, names[0], names[1], names[2]],
        { K: k, N: n, bits: 4, block_size: INT4_BLOCK },
        'com.microsoft',
      );
    }
    return b ? g.op1('Add', [y, b]) : y;
  }

  /** A plain fp32 tensor in the root graph (norm weights, biases, A, D...). */
  registerPlain(name: string, t: Tensor, shape = t.shape): string {
    const cached = this.registered.get(name);
    if (cached) return cached[0];
    const id = this.root.tensor(name, DType.float, shape, t.data);
    this.registered.set(name, [id]);
    return id;
  }
}

/** x / sqrt(mean(x²) + eps) · w over the last axis (the pattern ORT fuses into SimplifiedLayerNormalization). */
export function rmsNorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  const sq = g.op1('Pow', [x, g.constF32(2)]);
  const ms = g.op1('ReduceMean', [sq], { axes: [-1], keepdims: 1 });
  const rms = g.op1('Sqrt', [g.op1('Add', [ms, g.constF32(eps)])]);
  return g.op1('Mul', [g.op1('Div', [x, rms]), weight]);
}

export function silu(g: GraphBuilder, x: string): string {
  return g.op1('Mul', [x, g.op1('Sigmoid', [x])]);
}

/** A = −exp(A_log), computed once at export time in float64 then rounded, as the reference does. */
export function negExpA(aLog: Tensor): Tensor {
  const out = new Float32Array(aLog.data.length);
  for (let i = 0; i < out.length; i++) out[i] = -Math.exp(aLog.data[i]);
  return { shape: aLog.shape, data: out };
}

/** The embedding lookup; the int8/int4 exports gather int8 rows and rescale them. */
export function embed(g: GraphBuilder, lin: Linears, ids: string, weights: MambaWeights): string {
  return g.op1('Gather', [lin.registerPlain('embedding', weights.embedding), ids], { axis: 0 });
}

/** Final norm and lm_head on the selected rows [P, dModel] → logits [P, vocab]. */
export function head(g: GraphBuilder, lin: Linears, x: string, config: MambaConfig, weights: MambaWeights): string {
  const normed = rmsNorm(g, x, lin.registerPlain('norm_f', weights.normF), config.normEpsilon);
  // A tied head reuses the fp32 embedding the lookup needs anyway: no second copy, and no quantization error in
  // the logits. It stays [vocab, d] for the Gather, so this GEMM keeps transB (a transposed copy for the GEMV path
  // cost +24 MiB of heap at load). An untied head is quantized like the other large matrices.
  if (config.tieEmbeddings)
    return g.op1('Gemm', [normed, lin.registerPlain('embedding', weights.embedding)], { transB: 1 });
  return lin.apply(g, normed, 'lm_head', weights.lmHead, null);
}

export { f };
