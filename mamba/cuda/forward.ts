// One batched prefill pass on the device, structured like ReferenceEngine.forward: embedding → blocks (residual add,
// RMSNorm, mixer with optional DeciMamba; layers.ts's loop, shared with decoding) → norm_f and the lm_head at the
// requested rows only.
// Shapes come from the BatchPlan, memory from the pass layout (memory-plan.ts), all in one arena.
import type { KeptIndices } from '../engine.ts';
import type { DevicePtr } from './bindings/driver.ts';
import { chooseScanChunk, finalGroup, outputGroup, type BatchPlan } from './batch-plan.ts';
import { SCAN_THREADS } from './kernels/manifest.ts';
import { stateWords, type EngineCore } from './core.ts';
import { packPassTables, passTableWords, type PassTables } from './device-tables.ts';
import type { DeviceArena } from './arena.ts';
import { DEFAULT_SCAN, headTileRows, planPassMemory, type PassBuffer } from './memory-plan.ts';
import { blockBuffers, enqueueHead, enqueueLayers } from './layers.ts';
import type { MixerDecimation, MixerScan, ScanKind } from './mixer.ts';
import { type ScanCarry, scanPassKernels } from './ops-scan.ts';
import { passGraphKey, type PrefillGraphCache } from './prefill-graphs.ts';
import * as ops from './ops.ts';
import type { Layout } from './layout.ts';

export class PassError extends Error {
  override name = 'PassError';
}

export interface PassSequenceInput {
  ids: ArrayLike<number>;
  /** Position of ids[0] in the whole prompt (a later segment of a long plain prompt starts past 0). */
  positionOffset: number;
  /** Whole-prompt positions whose logits this pass must return (each must survive decimation). */
  logitPositions: number[];
  /** Carried state from the previous segment: conv [nLayer·dInner·dConv] and ssm [nLayer·dInner·dState]. */
  initState: { conv: Float32Array; ssm: Float32Array } | null;
}

export interface PassSequenceOutput {
  /** One row of `vocab` values per requested position, in the order asked. */
  logits: Float32Array[];
  kept: KeptIndices[];
  conv: Float32Array;
  ssm: Float32Array;
  /** Set when a requested position did not survive decimation (the other outputs are still valid). */
  error?: string;
}

export interface PassOptions {
  logProbs?: boolean;
  scanChunk?: number;
  /** Choose the scan chunk so the last wave of scan blocks is full (default; batch-plan.ts chooseScanChunk). */
  fitScanWaves?: boolean;
  guardBytes?: number;
  headMaxBytes?: number;
  /** Which selective-scan kernels run (mixer.ts; default DEFAULT_SCAN). */
  scan?: ScanKind;
  /** The split scans' pass 2 (ops-scan.ts ScanCarry; default DEFAULT_SCAN_CARRY). */
  scanCarry?: ScanCarry;
  /** out_proj adds into the residual stream (layers.ts LayerLoop.residualInOutProj). */
  residualInOutProj?: boolean;
  /** Run the blocks as CUDA graphs (captured the second time a pass shape is seen, replayed after). */
  graphs?: PrefillGraphCache | null;
}

export interface PassShape {
  chunkLen: number;
  tableWords: number;
  headRows: number;
  withInitState: boolean;
  scan: ScanKind;
}

/** The shape decisions a pass makes before launch (shared with the memory planner's callers). */
export function passShape(
  core: EngineCore,
  plan: BatchPlan,
  seqs: { logitPositions: number[]; hasInitState: boolean }[],
  opts: PassOptions = {},
): PassShape {
  const rows = plan.groups[0]!.rows;
  const scan = opts.scan ?? DEFAULT_SCAN;
  const outputPass = scanPassKernels(scan === 'split-staged').output;
  const fit = () =>
    opts.fitScanWaves === false ? undefined : core.kernels.blocksPerMultiprocessor(outputPass, SCAN_THREADS);
  const chunkLen = opts.scanChunk ?? chooseScanChunk(rows, core.config.dInner, core.device.info.multiprocessors, fit());
  const wanted = seqs.reduce((n, s) => n + s.logitPositions.length, 0);
  return {
    chunkLen,
    tableWords: passTableWords(plan, chunkLen),
    headRows: headTileRows(core.config.vocabSize, Math.max(1, wanted), opts.headMaxBytes),
    withInitState: seqs.some((s) => s.hasInitState),
    scan,
  };
}

export function passLayout(core: EngineCore, plan: BatchPlan, shape: PassShape, guardBytes = 0): Layout<PassBuffer> {
  return planPassMemory({ config: core.config, precision: core.precision, plan, ...shape, guardBytes });
}

export const GUARD_WORD = 0xdeadbeef;

export function forwardPass(
  core: EngineCore,
  arena: DeviceArena,
  plan: BatchPlan,
  seqs: PassSequenceInput[],
  opts: PassOptions = {},
): PassSequenceOutput[] {
  const { device, kernels: k, config } = core;
  const { vocabSize } = config;
  if (seqs.length !== plan.nSeq) throw new PassError(`pass: ${seqs.length} inputs for ${plan.nSeq} planned sequences`);
  const shape = passShape(
    core,
    plan,
    seqs.map((s) => ({ logitPositions: s.logitPositions, hasInitState: s.initState !== null })),
    opts,
  );
  const layout = passLayout(core, plan, shape, opts.guardBytes);
  const base = arena.ensure(layout.totalBytes);
  const buf = (name: PassBuffer): DevicePtr => base + layout.get(name).offset;

  // ---- inputs: one upload of every integer table, the carried states, guards and the status word
  const ids = new Int32Array(plan.groups[0]!.rows);
  seqs.forEach((s, i) => {
    ids.set(s.ids, plan.groups[0]!.seqStart[i]!);
  });
  const tables = packPassTables(
    plan,
    ids,
    shape.chunkLen,
    seqs.map((s) => s.positionOffset),
  );
  device.upload(buf('tables'), tables.data);
  const words = stateWords(config);
  if (shape.withInitState) {
    const conv = new Float32Array(plan.nSeq * words.conv);
    const ssm = new Float32Array(plan.nSeq * words.ssm);
    seqs.forEach((s, i) => {
      if (s.initState) {
        conv.set(s.initState.conv, i * words.conv);
        ssm.set(s.initState.ssm, i * words.ssm);
      }
    });
    device.upload(buf('initConv'), conv);
    device.upload(buf('initSsm'), ssm);
  }
  for (const g of layout.guards) device.fill32(base + g.offset, GUARD_WORD, g.bytes / 4);
  device.fill32(buf('status'), 0, 1);
  const t = (offset: number): DevicePtr => buf('tables') + offset * 4;

  // ---- the blocks (one CUDA graph when the engine keeps them, prefill-graphs.ts)
  const groupPositions = positionsBuffers(plan, tables, t, buf('positions'));
  // the residual stream ends in one of two buffers, fixed by the plan (it swaps at each decimating layer)
  const residual = plan.decimations.filter((d) => d !== null).length % 2 === 0 ? buf('residual') : buf('residualAlt');
  const pb: PassBuffers = { buf, t, tables, groupPositions };
  const enqueue = () =>
    enqueueLayers(core, {
      ids: t(tables.ids),
      rows: plan.groups[0]!.rows,
      nSeq: plan.nSeq,
      buffers: { ...blockBuffers(buf), residual: buf('residual'), residualAlt: buf('residualAlt') },
      states: {
        conv: buf('convState'),
        ssm: buf('ssmState'),
        initConv: shape.withInitState ? buf('initConv') : null,
        initSsm: shape.withInitState ? buf('initSsm') : null,
      },
      layer: (i) => passLayer(plan, pb, i, shape.scan, opts.scanCarry),
      residualInOutProj: opts.residualInOutProj,
    });
  // with the profiler on, the host's work before the first launch is its own interval, not the first kernel's
  device.profiler?.mark('host: plan, tables, uploads');
  if (opts.graphs) {
    opts.graphs.run(passGraphKey(base, plan, shape.chunkLen, shape.withInitState, shape.scan), enqueue);
  } else {
    enqueue();
  }

  // ---- where each sequence's tokens ended up: status, positions after every decimation (one download)
  const status = device.download(new Int32Array(1), buf('status'));
  if (status[0] !== 0)
    throw new PassError(`decimate_select reported status ${status[0]} (a sequence kept the wrong number of rows)`);
  const positionsHost =
    layout.get('positions').bytes > 0
      ? device.download(new Int32Array(layout.get('positions').bytes / 4), buf('positions'))
      : new Int32Array(0);
  const hostPositions = (g: number, s: number): Int32Array => {
    const group = plan.groups[g]!;
    if (g === 0) {
      const out = new Int32Array(group.seqStart[s + 1]! - group.seqStart[s]!);
      for (let j = 0; j < out.length; j++) out[j] = seqs[s]!.positionOffset + j;
      return out;
    }
    const off = plan.groups.slice(1, g).reduce((n, gg) => n + gg.rows, 0);
    return positionsHost.slice(off + group.seqStart[s]!, off + group.seqStart[s + 1]!);
  };

  // ---- norm_f + lm_head at the requested rows only, in tiles
  const gF = finalGroup(plan);
  const outputs: PassSequenceOutput[] = seqs.map(() => ({
    logits: [],
    kept: [],
    conv: new Float32Array(0),
    ssm: new Float32Array(0),
  }));
  const requests: { seq: number; row: number }[] = [];
  seqs.forEach((s, i) => {
    for (const d of plan.decimations) {
      if (d && d.keep[i]! >= 0) outputs[i]!.kept.push({ layer: d.layer, indices: hostPositions(d.toGroup, i) });
    }
    // a row's position: its own index in the prompt, or where decimation kept it (ascending, so a binary search;
    // a Map of a 32K-token prompt's positions cost ~3 ms of host time with the GPU idle)
    const start = plan.groups[gF]!.seqStart[i]!;
    const finalPositions = gF === 0 ? null : hostPositions(gF, i);
    const rowCount = plan.groups[gF]!.seqStart[i + 1]! - start;
    for (const p of s.logitPositions) {
      const j = finalPositions ? sortedIndexOf(finalPositions, p) : p - s.positionOffset;
      const row = j >= 0 && j < rowCount ? start + j : undefined;
      if (row === undefined) {
        outputs[i]!.error =
          `prefill: logits requested at position ${p}, which decimation dropped (raise protect to cover it)`;
        break;
      }
      requests.push({ seq: i, row });
    }
  });
  const wanted = requests.filter((r) => !outputs[r.seq]!.error);
  device.profiler?.mark('host: status, positions, logit rows');
  for (let start = 0; start < wanted.length; start += shape.headRows) {
    const tile = wanted.slice(start, start + shape.headRows);
    device.upload(
      buf('headRows'),
      Int32Array.from(tile, (r) => r.row),
    );
    const [rowIdx, normed] = [buf('headRows'), buf('headNormed')];
    const hidden = opts.residualInOutProj ? null : buf('hidden');
    enqueueHead(core, { hidden, residual, rowIdx, normed, logits: buf('logits'), rows: tile.length });
    if (opts.logProbs) ops.logSoftmax(k, buf('logits'), tile.length, vocabSize);
    const logits = device.download(new Float32Array(tile.length * vocabSize), buf('logits'));
    tile.forEach((r, j) => {
      outputs[r.seq]!.logits.push(logits.subarray(j * vocabSize, (j + 1) * vocabSize));
    });
  }

  // ---- states after the pass, one contiguous block per sequence
  const conv = device.download(new Float32Array(plan.nSeq * words.conv), buf('convState'));
  const ssm = device.download(new Float32Array(plan.nSeq * words.ssm), buf('ssmState'));
  outputs.forEach((o, i) => {
    o.conv = conv.subarray(i * words.conv, (i + 1) * words.conv);
    o.ssm = ssm.subarray(i * words.ssm, (i + 1) * words.ssm);
  });
  if (layout.guards.length > 0) checkGuards(core, base, layout);
  return outputs;
}

/** Index of `value` in an ascending array, or −1. */
export function sortedIndexOf(sorted: Int32Array, value: number): number {
  let [lo, hi] = [0, sorted.length - 1];
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const v = sorted[mid]!;
    if (v === value) return mid;
    if (v < value) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

interface PassBuffers {
  buf: (name: PassBuffer) => DevicePtr;
  t: (offset: number) => DevicePtr;
  tables: PassTables;
  groupPositions: DevicePtr[];
}

/** Layer i of a pass for the layer loop: its input group's rows and tables, its output group's scan chunks, and
 * DeciMamba's selection when some sequence drops tokens here. */
function passLayer(
  plan: BatchPlan,
  pb: PassBuffers,
  i: number,
  scan: ScanKind,
  carry?: ScanCarry,
): { rowsIn: number; scan: MixerScan } {
  const { buf, t, tables, groupPositions } = pb;
  const gIn = plan.layerGroup[i]!;
  const gOut = outputGroup(plan, i);
  const tin = tables.groups[gIn]!;
  const tout = tables.groups[gOut]!;
  const dt = plan.decimations[i] ? tables.decimations[i]! : null;
  const decimation: MixerDecimation | null = dt && {
    rowsOut: plan.groups[gOut]!.rows,
    contextLen: t(dt.contextLen),
    keep: t(dt.keep),
    newSeqStart: t(tout.seqStart),
    scores: buf('scores'),
    srcRow: buf('srcRow'),
    status: buf('status'),
    gathered: { x: buf('xGathered'), delta: buf('deltaGathered'), z: buf('zGathered'), bc: buf('bcGathered') },
    // the original positions follow the kept tokens (the loop gathers the residual stream)
    alsoGather: [
      { src: groupPositions[gIn]!, dst: groupPositions[gOut]!, width: 1, elementBytes: 4, label: 'gather_positions' },
    ],
  };
  return {
    rowsIn: plan.groups[gIn]!.rows,
    scan: {
      kind: 'chunked',
      tables: { rowSeq: t(tin.rowSeq), seqStart: t(tin.seqStart) },
      chunks: {
        chunkStart: t(tout.chunkStart),
        chunkLen: t(tout.chunkLen),
        seqFirstChunk: t(tout.seqFirstChunk),
        count: tout.chunkCount,
      },
      scratch: { chunkH: buf('chunkH'), chunkDeltaSum: buf('chunkDeltaSum') },
      decimation,
      scan,
      carry,
    },
  };
}

/** Device address of each group's original-position column (group 0 lives in the uploaded tables). */
function positionsBuffers(
  plan: BatchPlan,
  tables: PassTables,
  t: (o: number) => DevicePtr,
  positions: DevicePtr,
): DevicePtr[] {
  const out: DevicePtr[] = [t(tables.positions)];
  let at = positions;
  for (const g of plan.groups.slice(1)) {
    out.push(at);
    at += g.rows * 4;
  }
  return out;
}

/** Verifies that no kernel wrote into the guard bytes between buffers (overflow detection; tests and device check). */
export function checkGuards(core: EngineCore, base: DevicePtr, layout: Layout<PassBuffer>): void {
  const names = layout.entries();
  for (const g of layout.guards) {
    const words = core.device.download(new Uint32Array(g.bytes / 4), base + g.offset);
    const bad = words.findIndex((w) => w !== GUARD_WORD);
    if (bad >= 0) {
      const before = names.filter(([, s]) => s.offset < g.offset).pop()?.[0] ?? '?';
      throw new PassError(
        `guard after buffer "${before}" was overwritten (word ${bad}): a kernel wrote past its buffer`,
      );
    }
  }
}
