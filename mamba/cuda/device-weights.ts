// The model's weights on the device, in one allocation. Small tensors (norms, conv, biases, A, D) stay f32; the GEMM
// weights are f32 for the parity path or bf16 for speed (converted on the device, round to nearest even).
import type { LayerWeights, MambaConfig, MambaWeights, Tensor } from '../engine.ts';
import type { DevicePtr } from './bindings/driver.ts';
import type { GemmType } from './bindings/cublas.ts';
import type { CudaDevice, KernelSet } from './device.ts';
import { transpose2d } from '../weights.ts';
import { align, Layout } from './layout.ts';
import type { Precision } from './memory-plan.ts';
import { convertToBf16 } from './ops.ts';

export interface DeviceLayer {
  norm: DevicePtr;
  inProj: DevicePtr;
  inProjBias: DevicePtr | null;
  convWeight: DevicePtr;
  convBias: DevicePtr | null;
  xProj: DevicePtr;
  dtProjWeight: DevicePtr;
  /** dt_proj's weight transposed, gemmType [dtRank, dInner]: the fused decode step reads it a channel a lane. */
  dtProjT: DevicePtr;
  dtProjBias: DevicePtr;
  /** −exp(A_log)·log2(e), [dInner, dState]: the scan computes exp(Δ·A) as exp2(Δ·aLog2). */
  aLog2: DevicePtr;
  d: DevicePtr;
  outProj: DevicePtr;
  outProjBias: DevicePtr | null;
  /** Every tensor above, laid out together: the range a decode step asks L2 for a layer ahead (ops-args.ts L2Range). */
  span: { ptr: DevicePtr; bytes: number };
}

export interface DeviceWeights {
  precision: Precision;
  gemmType: GemmType;
  embedding: DevicePtr; // f32 [vocab, dModel], for the gather
  lmHead: DevicePtr; // gemmType [vocab, dModel]
  normF: DevicePtr;
  layers: DeviceLayer[];
  bytes: number;
  base: DevicePtr;
}

const LOG2E = Math.LOG2E;

export function aLog2(aLog: Float32Array): Float32Array {
  const out = new Float32Array(aLog.length);
  for (let i = 0; i < aLog.length; i++) out[i] = -Math.exp(aLog[i]!) * LOG2E;
  return out;
}

type GemmKey = 'inProj' | 'xProj' | 'dtProjWeight' | 'outProj';
const GEMM_KEYS: GemmKey[] = ['inProj', 'xProj', 'dtProjWeight', 'outProj'];

export function uploadWeights(
  device: CudaDevice,
  kernels: KernelSet,
  config: MambaConfig,
  weights: MambaWeights,
  precision: Precision,
): DeviceWeights {
  const gemmType: GemmType = precision === 'bf16' ? 'bf16' : 'f32';
  const gemmBytes = gemmType === 'bf16' ? 2 : 4;
  const layout = new Layout<string>();
  const f32 = (name: string, t: Tensor | Float32Array | null) => {
    if (t) layout.add(name, ('data' in t ? t.data : t).length * 4);
  };
  const gemm = (name: string, t: Tensor) => layout.add(name, t.data.length * gemmBytes);
  f32('embedding', weights.embedding);
  const separateHead = weights.lmHead !== weights.embedding || gemmType === 'bf16';
  if (separateHead) gemm('lmHead', weights.lmHead);
  f32('normF', weights.normF);
  weights.layers.forEach((l, i) => {
    f32(`${i}.norm`, l.norm);
    f32(`${i}.inProjBias`, l.inProjBias);
    f32(`${i}.convWeight`, l.convWeight);
    f32(`${i}.convBias`, l.convBias);
    f32(`${i}.dtProjBias`, l.dtProjBias);
    f32(`${i}.aLog2`, l.aLog);
    f32(`${i}.d`, l.d);
    f32(`${i}.outProjBias`, l.outProjBias);
    for (const k of GEMM_KEYS) gemm(`${i}.${k}`, l[k]);
    gemm(`${i}.dtProjT`, l.dtProjWeight);
  });
  const base = device.alloc(layout.totalBytes);
  const at = (name: string) => base + layout.get(name).offset;

  // bf16: stage each f32 tensor, convert in place into its span
  let staging: DevicePtr | null = null;
  if (gemmType === 'bf16') {
    const largest = Math.max(
      weights.lmHead.data.length,
      ...weights.layers.flatMap((l) => GEMM_KEYS.map((k) => l[k].data.length)),
    );
    staging = device.alloc(largest * 4);
  }
  const putGemm = (name: string, t: Tensor) => {
    if (!staging) return device.upload(at(name), t.data);
    device.upload(staging, t.data);
    convertToBf16(kernels, staging, at(name), t.data.length);
  };
  try {
    device.upload(at('embedding'), weights.embedding.data);
    if (separateHead) putGemm('lmHead', weights.lmHead);
    device.upload(at('normF'), weights.normF.data);
    const layers = weights.layers.map((l: LayerWeights, i): DeviceLayer => {
      const opt = (key: 'inProjBias' | 'convBias' | 'outProjBias') => {
        const t = l[key];
        if (!t) return null;
        device.upload(at(`${i}.${key}`), t.data);
        return at(`${i}.${key}`);
      };
      for (const key of ['norm', 'convWeight', 'dtProjBias', 'd'] as const)
        device.upload(at(`${i}.${key}`), l[key].data);
      device.upload(at(`${i}.aLog2`), aLog2(l.aLog.data));
      for (const k of GEMM_KEYS) putGemm(`${i}.${k}`, l[k]);
      putGemm(`${i}.dtProjT`, transpose2d(l.dtProjWeight));
      const spans = layout.entries().filter(([name]) => name.startsWith(`${i}.`));
      const start = Math.min(...spans.map(([, s]) => s.offset));
      const end = Math.max(...spans.map(([, s]) => s.offset + s.bytes));
      return {
        norm: at(`${i}.norm`),
        inProj: at(`${i}.inProj`),
        inProjBias: opt('inProjBias'),
        convWeight: at(`${i}.convWeight`),
        convBias: opt('convBias'),
        xProj: at(`${i}.xProj`),
        dtProjWeight: at(`${i}.dtProjWeight`),
        dtProjT: at(`${i}.dtProjT`),
        dtProjBias: at(`${i}.dtProjBias`),
        aLog2: at(`${i}.aLog2`),
        d: at(`${i}.d`),
        outProj: at(`${i}.outProj`),
        outProjBias: opt('outProjBias'),
        span: { ptr: base + start, bytes: align(end - start, 16) },
      };
    });
    device.synchronize();
    if (layers.length !== config.nLayer)
      throw new Error(`weights have ${layers.length} layers, config ${config.nLayer}`);
    return {
      precision,
      gemmType,
      embedding: at('embedding'),
      lmHead: separateHead ? at('lmHead') : at('embedding'),
      normF: at('normF'),
      layers,
      bytes: layout.totalBytes,
      base,
    };
  } catch (err) {
    device.free(base);
    throw err;
  } finally {
    if (staging !== null) {
      device.synchronize();
      device.free(staging);
    }
  }
}
