// Host-side shape plan for one batched prefill pass: several sequences packed back to back (cu_seqlens style), each
// with its own DeciMamba settings. K depends only on lengths (decimation.ts), so every layer's row count, every
// sequence's offsets and every scan chunk are known before launch; only *which* rows survive is decided on the GPU.
// Pure TypeScript, unit-tested without a GPU.
import { planDecimation } from '../decimation.ts';
import type { DecimationConfig } from '../engine.ts';
import { SCAN_THREADS } from './kernels/manifest.ts';

export interface PlannedSequence {
  /** Rows this sequence contributes to the pass (the whole prompt, or one segment of a long plain prompt). */
  length: number;
  /** The protected tail (clamped to the length at each decimating layer, as the reference does). */
  protect: number;
  decimation: DecimationConfig | null;
}

/** The packed row layout between two decimation points. */
export interface RowGroup {
  /** [nSeq + 1]: sequence s owns rows seqStart[s] .. seqStart[s+1]. */
  seqStart: Int32Array;
  rows: number;
}

/** What happens at a layer where at least one sequence drops tokens. */
export interface DecimationStep {
  layer: number;
  /** Group of the rows before (mixer input, scores) and after (scan, residual, later layers). */
  fromGroup: number;
  toGroup: number;
  /** Per sequence: scored context length Lc (0 when the sequence does not decimate here). */
  contextLen: Int32Array;
  /** Per sequence: K when it drops tokens here, −1 when it keeps every row. */
  keep: Int32Array;
}

export interface BatchPlan {
  nSeq: number;
  nLayer: number;
  sequences: PlannedSequence[];
  groups: RowGroup[];
  /** Group of each layer's input rows. */
  layerGroup: number[];
  /** Indexed by layer; null where nothing is dropped. */
  decimations: (DecimationStep | null)[];
}

export class BatchPlanError extends Error {
  override name = 'BatchPlanError';
}

function groupFromLengths(lengths: number[]): RowGroup {
  const seqStart = new Int32Array(lengths.length + 1);
  for (let s = 0; s < lengths.length; s++) seqStart[s + 1] = seqStart[s]! + lengths[s]!;
  return { seqStart, rows: seqStart[lengths.length]! };
}

export function planBatch(sequences: PlannedSequence[], nLayer: number): BatchPlan {
  if (sequences.length === 0) throw new BatchPlanError('a pass needs at least one sequence');
  sequences.forEach((s, i) => {
    if (!Number.isInteger(s.length) || s.length < 1)
      throw new BatchPlanError(`sequence ${i}: length ${s.length} is not a positive integer`);
  });
  // Each sequence's own length plan (mamba/decimation.ts, the one every engine uses); the groups follow from it.
  const plans = sequences.map((seq) => planDecimation(seq.length, seq.protect, nLayer, seq.decimation));
  let lengths = sequences.map((s) => s.length);
  const groups: RowGroup[] = [groupFromLengths(lengths)];
  const layerGroup: number[] = [];
  const decimations: (DecimationStep | null)[] = [];
  for (let layer = 0; layer < nLayer; layer++) {
    const from = groups.length - 1;
    layerGroup.push(from);
    const contextLen = new Int32Array(sequences.length);
    const keep = new Int32Array(sequences.length).fill(-1);
    let drops = false;
    const next = lengths.slice();
    plans.forEach((plan, s) => {
      const k = plan.keep[layer]!;
      if (k < 0) return;
      contextLen[s] = plan.contextLen[layer]!;
      keep[s] = k;
      next[s] = lengths[s]! - contextLen[s]! + k; // K kept + the protected tail
      drops = true;
    });
    if (!drops) {
      decimations.push(null);
      continue;
    }
    lengths = next;
    groups.push(groupFromLengths(lengths));
    decimations.push({ layer, fromGroup: from, toGroup: groups.length - 1, contextLen, keep });
  }
  return { nSeq: sequences.length, nLayer, sequences, groups, layerGroup, decimations };
}

/** Group of each layer's output rows (the scan, out_proj and the residual after the layer). */
export function outputGroup(plan: BatchPlan, layer: number): number {
  return plan.decimations[layer]?.toGroup ?? plan.layerGroup[layer]!;
}

export function finalGroup(plan: BatchPlan): number {
  return plan.groups.length - 1;
}

/** Most rows any group after the first has (sizes the gather buffers); 0 without decimation. */
export function maxDecimatedRows(plan: BatchPlan): number {
  return plan.groups.slice(1).reduce((m, g) => Math.max(m, g.rows), 0);
}

/** Layers at which sequence s dropped tokens (the layers `kept` reports for it). */
export function droppingLayers(plan: BatchPlan, s: number): number[] {
  return plan.decimations.filter((d): d is DecimationStep => d !== null && d.keep[s]! >= 0).map((d) => d.layer);
}

// ---------------------------------------------------------------------------------------------- scan chunks

/** Time chunks of one group: never crossing a sequence, `chunkLen` rows each (the last of a sequence may be shorter). */
export interface ScanChunks {
  chunkStart: Int32Array;
  chunkLen: Int32Array;
  /** [nSeq + 1]: sequence s owns chunks seqFirstChunk[s] .. seqFirstChunk[s+1]. */
  seqFirstChunk: Int32Array;
  count: number;
}

export function scanChunks(group: RowGroup, chunkLen: number): ScanChunks {
  if (!Number.isInteger(chunkLen) || chunkLen < 1)
    throw new BatchPlanError(`scan chunk length ${chunkLen} is not a positive integer`);
  const nSeq = group.seqStart.length - 1;
  const seqFirstChunk = new Int32Array(nSeq + 1);
  for (let s = 0; s < nSeq; s++) {
    const len = group.seqStart[s + 1]! - group.seqStart[s]!;
    seqFirstChunk[s + 1] = seqFirstChunk[s]! + Math.ceil(len / chunkLen);
  }
  const count = seqFirstChunk[nSeq]!;
  const chunkStart = new Int32Array(count);
  const lens = new Int32Array(count);
  for (let s = 0; s < nSeq; s++) {
    const start = group.seqStart[s]!;
    const end = group.seqStart[s + 1]!;
    for (let k = seqFirstChunk[s]!, at = start; k < seqFirstChunk[s + 1]!; k++, at += chunkLen) {
      chunkStart[k] = at;
      lens[k] = Math.min(chunkLen, end - at);
    }
  }
  return { chunkStart, chunkLen: lens, seqFirstChunk, count };
}

/** Most chunks any group needs (sizes the scan's per-chunk state buffer). */
export function maxScanChunks(plan: BatchPlan, chunkLen: number): number {
  return plan.groups.reduce((m, g) => Math.max(m, scanChunks(g, chunkLen).count), 0);
}

/**
 * The scan's time-chunk length. The base is a power of two in [16, 2048] giving about 16 blocks per multiprocessor, so
 * long sequences fill the GPU while the carry pass stays short. Given how many scan blocks fit a multiprocessor at once
 * (`blocksPerSM`, the driver's occupancy), a length between the base and twice it (a multiple of 16) is taken that
 * fills the last wave of blocks: the least (waves, rounded up) × length. A partial last wave holds the GPU about as
 * long as a full one (ncu, H100, 130m at 32K: 3,072 blocks at 7 a multiprocessor were 3 waves and 301 blocks).
 */
export function chooseScanChunk(rows: number, dInner: number, multiprocessors: number, blocksPerSM?: number): number {
  const channelBlocks = Math.ceil(dInner / SCAN_THREADS);
  const targetChunks = Math.max(1, Math.ceil((16 * multiprocessors) / channelBlocks));
  const ideal = Math.max(1, Math.floor(rows / targetChunks));
  let base = 16;
  while (base * 2 <= ideal && base < 2048) base *= 2;
  if (!blocksPerSM || blocksPerSM < 1) return base;
  const wave = blocksPerSM * multiprocessors;
  const cost = (len: number) => Math.ceil((Math.ceil(rows / len) * channelBlocks) / wave) * len;
  let best = base;
  for (let len = base + 16; len < 2 * base && len <= 2048; len += 16) if (cost(len) < cost(best)) best = len;
  return best;
}

/** rowSeq[r] = the sequence owning row r. */
export function rowSequence(group: RowGroup): Int32Array {
  const out = new Int32Array(group.rows);
  const nSeq = group.seqStart.length - 1;
  for (let s = 0; s < nSeq; s++) out.fill(s, group.seqStart[s]!, group.seqStart[s + 1]!);
  return out;
}
