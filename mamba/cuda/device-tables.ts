// Everything integer a pass needs on the device, packed into one Int32Array so it goes up in a single copy:
// token ids, original positions of the first group's rows, each group's offsets / row→sequence map / scan chunks,
// and each decimation step's per-sequence Lc and K. Offsets are in int32 words. Pure TypeScript.
import { rowSequence, scanChunks, type BatchPlan } from './batch-plan.ts';

export interface GroupTables {
  seqStart: number;
  rowSeq: number;
  chunkStart: number;
  chunkLen: number;
  seqFirstChunk: number;
  chunkCount: number;
}

export interface DecimationTables {
  contextLen: number;
  keep: number;
}

export interface PassTables {
  data: Int32Array;
  ids: number;
  /** Original positions of group 0's rows. */
  positions: number;
  groups: GroupTables[];
  /** Indexed by layer, null where nothing is dropped. */
  decimations: (DecimationTables | null)[];
}

/** `positionOffsets[s]` is added to sequence s's row index (a segment of a long prompt starts past 0). */
export function packPassTables(
  plan: BatchPlan,
  ids: Int32Array,
  chunkLen: number,
  positionOffsets?: number[],
): PassTables {
  const rows = plan.groups[0]!.rows;
  if (ids.length !== rows) throw new RangeError(`tables: ${ids.length} ids for ${rows} rows`);
  const parts: Int32Array[] = [];
  let at = 0;
  const push = (a: Int32Array): number => {
    parts.push(a);
    const offset = at;
    at += a.length;
    return offset;
  };
  const idsAt = push(ids);
  const positions = new Int32Array(rows);
  const g0 = plan.groups[0]!;
  for (let s = 0; s < plan.nSeq; s++) {
    const base = positionOffsets?.[s] ?? 0;
    for (let r = g0.seqStart[s]!, t = 0; r < g0.seqStart[s + 1]!; r++, t++) positions[r] = base + t;
  }
  const positionsAt = push(positions);
  const groups = plan.groups.map((g) => {
    const chunks = scanChunks(g, chunkLen);
    return {
      seqStart: push(g.seqStart),
      rowSeq: push(rowSequence(g)),
      chunkStart: push(chunks.chunkStart),
      chunkLen: push(chunks.chunkLen),
      seqFirstChunk: push(chunks.seqFirstChunk),
      chunkCount: chunks.count,
    };
  });
  const decimations = plan.decimations.map((d) => (d ? { contextLen: push(d.contextLen), keep: push(d.keep) } : null));
  const data = new Int32Array(at);
  let o = 0;
  for (const p of parts) {
    data.set(p, o);
    o += p.length;
  }
  return { data, ids: idsAt, positions: positionsAt, groups, decimations };
}

/** Words packPassTables will use, without building them (for the memory plan). */
export function passTableWords(plan: BatchPlan, chunkLen: number): number {
  let words = 2 * plan.groups[0]!.rows;
  for (const g of plan.groups) {
    const chunks = scanChunks(g, chunkLen);
    words += 2 * (plan.nSeq + 1) + g.rows + 2 * chunks.count;
  }
  for (const d of plan.decimations) if (d) words += 2 * plan.nSeq;
  return words;
}
