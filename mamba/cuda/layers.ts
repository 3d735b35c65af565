// The CUDA engine's one layer loop, for a prefill pass (forward.ts) and a decode step (decode.ts) alike, as in
// ReferenceEngine.forward: embedding, then per layer the residual add + RMSNorm and the mixer (mixer.ts); then norm_f
// and the lm_head at chosen rows. The callers differ only in what they pass: the rows, and per layer its `MixerScan`
// (prefill: chunked scan, carried states, DeciMamba; decode: the one-step update). Both capture these launches as
// CUDA graphs (prefill-graphs.ts, decode.ts), so nothing here reads back from the device.
import type { DevicePtr } from './bindings/driver.ts';
import { stateWords, type EngineCore } from './core.ts';
import { BLOCK_BUFFERS, type BlockBuffer } from './memory-plan.ts';
import { mambaMixer, type MixerScan, type MixerStates } from './mixer.ts';
import * as ops from './ops.ts';
import { lmHead } from './projections.ts';

export interface LayerLoop {
  /** Token ids on the device and the rows they fill (the packed prompts, or one token per sequence). */
  ids: DevicePtr;
  rows: number;
  nSeq: number;
  /** The block activations; `residualAlt` takes the residual stream's kept rows at a decimating layer. */
  buffers: Record<BlockBuffer, DevicePtr> & { residual: DevicePtr; residualAlt: DevicePtr | null };
  /** Each sequence's whole state (core.ts stateWords layout); `init*`: the states a prefill segment starts from. */
  states: { conv: DevicePtr; ssm: DevicePtr; initConv: DevicePtr | null; initSsm: DevicePtr | null };
  /** Layer i: the rows entering it and how it convolves and scans them. */
  layer: (i: number) => { rowsIn: number; scan: MixerScan };
  /**
   * Each block's out_proj adds into the residual stream (cuBLAS beta = 1), so the next norm only reads it and
   * `hidden` is never written: enqueueHead then takes hidden null. Chunked (prefill) layers only.
   */
  residualInOutProj?: boolean;
}

/**
 * Every block's launches, in order (the first block's norm gathers the embedding rows). The residual stream ends in
 * `residual` unless an odd number of layers decimate (then `residualAlt`): the caller knows which from its plan, since
 * a replayed graph skips this.
 */
export function enqueueLayers(core: EngineCore, loop: LayerLoop): void {
  const { kernels: k, config, weights } = core;
  const { dModel, dInner, dConv, dState, nLayer, normEpsilon } = config;
  const b = loop.buffers;
  const words = stateWords(config);
  let residual = b.residual;
  let residualAlt = b.residualAlt;
  for (let i = 0; i < nLayer; i++) {
    const layer = weights.layers[i]!;
    const run = loop.layer(i);
    const rowsIn = run.rowsIn;
    let scan = run.scan;
    const outAdds = !!loop.residualInOutProj && scan.kind === 'chunked';
    if (loop.residualInOutProj && !outAdds) throw new Error('residualInOutProj: prefill (chunked) layers only');
    // a fused decode step forms the norm inside in_proj, with its own residual pair (mixer.ts FusedStep)
    if (!(scan.kind === 'step' && scan.fused))
      ops.addRmsNorm(k, {
        hidden: outAdds ? null : b.hidden,
        residual,
        normed: b.normed,
        weight: layer.norm,
        rows: rowsIn,
        dim: dModel,
        eps: normEpsilon,
        embed: i === 0 ? { ids: loop.ids, table: weights.embedding } : null,
      });
    // layer i's slice of every sequence's state: [dInner, dConv] and [dInner, dState] f32 within each sequence's block
    const conv = (base: DevicePtr) => ({ ptr: base + i * dInner * dConv * 4, seqStride: words.conv });
    const ssm = (base: DevicePtr) => ({ ptr: base + i * dInner * dState * 4, seqStride: words.ssm });
    const { initConv, initSsm } = loop.states;
    const states: MixerStates = {
      conv: conv(loop.states.conv),
      ssm: ssm(loop.states.ssm),
      initConv: initConv === null ? null : conv(initConv),
      initSsm: initSsm === null ? null : ssm(initSsm),
    };
    const decimation = scan.kind === 'chunked' ? scan.decimation : null;
    if (scan.kind === 'chunked' && decimation) {
      if (residualAlt === null) throw new Error(`layer ${i} decimates but the loop has no residualAlt buffer`);
      // the residual stream follows the kept tokens, into the other buffer
      const gatherResidual = { src: residual, dst: residualAlt, width: dModel, elementBytes: 4 as const };
      const alsoGather = [{ ...gatherResidual, label: 'gather_residual' }, ...decimation.alsoGather];
      scan = { ...scan, decimation: { ...decimation, alsoGather } };
    }
    // with outAdds, out_proj adds into the residual stream where it stands after this layer (the kept rows' copy
    // when it decimates)
    const out = !outAdds ? b.hidden : decimation ? residualAlt! : residual;
    mambaMixer(core, layer, { ...b, out, outAdds }, { rowsIn, nSeq: loop.nSeq }, states, scan);
    if (decimation && residualAlt !== null) [residual, residualAlt] = [residualAlt, residual];
  }
}

/** The block activations' addresses, from a layout that holds every BLOCK_BUFFERS name. */
export function blockBuffers(buf: (name: BlockBuffer) => DevicePtr): Record<BlockBuffer, DevicePtr> {
  return Object.fromEntries(BLOCK_BUFFERS.map((name) => [name, buf(name)])) as Record<BlockBuffer, DevicePtr>;
}

/** norm_f of (hidden + residual) at rows rowIdx[0..rows) (hidden null: the residual alone), then the lm_head → logits. */
export function enqueueHead(
  core: EngineCore,
  a: {
    hidden: DevicePtr | null;
    residual: DevicePtr;
    rowIdx: DevicePtr;
    normed: DevicePtr;
    logits: DevicePtr;
    rows: number;
  },
): void {
  const { dModel, normEpsilon } = core.config;
  ops.finalNorm(core.kernels, {
    hidden: a.hidden,
    residual: a.residual,
    rowIdx: a.rowIdx,
    out: a.normed,
    weight: core.weights.normF,
    nOut: a.rows,
    dim: dModel,
    eps: normEpsilon,
  });
  lmHead(core, a.normed, a.logits, a.rows);
}
