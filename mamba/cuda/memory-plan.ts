// Peak device memory of one prefill pass, computed before anything is launched: every buffer the forward needs is a
// span of one arena sized here. The engine refuses or splits work whose plan exceeds the budget, so a job never
// runs out of memory halfway. Pure TypeScript.
import type { MambaConfig } from '../engine.ts';
import { maxDecimatedRows, maxScanChunks, type BatchPlan } from './batch-plan.ts';
import { Layout } from './layout.ts';

export type Precision = 'fp32' | 'bf16';

/** The activations one block reads and writes, per row: the same set for a prefill pass and a decode step. */
export const BLOCK_BUFFERS = ['hidden', 'normed', 'xz', 'x', 'xDbl', 'delta', 'y'] as const;
export type BlockBuffer = (typeof BLOCK_BUFFERS)[number];

export const PASS_BUFFERS = [
  'tables',
  'residual',
  'residualAlt',
  ...BLOCK_BUFFERS,
  'xGathered',
  'deltaGathered',
  'zGathered',
  'bcGathered',
  'scores',
  'srcRow',
  'positions',
  'chunkH',
  'chunkDeltaSum',
  'convState',
  'ssmState',
  'initConv',
  'initSsm',
  'headRows',
  'headNormed',
  'logits',
  'status',
] as const;
export type PassBuffer = (typeof PASS_BUFFERS)[number];

export interface PassMemoryInput {
  config: MambaConfig;
  precision: Precision;
  plan: BatchPlan;
  chunkLen: number;
  /** Int32 words of the uploaded tables (ids, positions, offsets, chunks); see device-tables.ts. */
  tableWords: number;
  /** Rows the lm_head handles at once. */
  headRows: number;
  /** Sequences start from a carried state (a later segment of a long plain prompt). */
  withInitState: boolean;
  /** Default DEFAULT_SCAN (never a fused kind). */
  scan?: ScanKind;
  guardBytes?: number;
}

/**
 * Prefill's selective-scan kernels (mixer.ts says what each runs). The fused kinds read kept rows in place: they need
 * no chunk states and no gathered scan inputs.
 */
export type ScanKind = 'split' | 'split-softplus' | 'split-staged' | 'fused' | 'fused-t2';
export const isFusedScan = (scan: ScanKind | undefined): boolean => scan === 'fused' || scan === 'fused-t2';
/**
 * The prefill scan unless asked: the staged passes, measured fastest in both precisions (H100,
 * cuda-scan-staged-h100.json: in bf16 the scan kernels take 0.87–0.89× split-softplus's time at 130m 32K and 128K, 0.90
 * at 1.4b 32K; cuda-scan-staged-fp32-h100.json: in fp32 0.86–0.91× at 130m 32K, 151–152 against 154 ms a pass).
 */
export const DEFAULT_SCAN: ScanKind = 'split-staged';

export function activationBytes(precision: Precision): number {
  return precision === 'bf16' ? 2 : 4;
}

/** x_proj's output width: dt (dt_rank) then B and C (d_state each). */
export function xDblWidth(config: MambaConfig): number {
  return config.dtRank + 2 * config.dState;
}

/** Bytes of each block activation for `rows` rows (act = f32 or bf16 by precision; Δ and the block output stay f32). */
export function blockBufferBytes(config: MambaConfig, precision: Precision, rows: number): Record<BlockBuffer, number> {
  const { dModel, dInner } = config;
  const act = activationBytes(precision);
  return {
    hidden: rows * dModel * 4,
    normed: rows * dModel * act,
    xz: rows * 2 * dInner * act,
    x: rows * dInner * act,
    xDbl: rows * xDblWidth(config) * act,
    delta: rows * dInner * 4,
    y: rows * dInner * act,
  };
}

export function planPassMemory(input: PassMemoryInput): Layout<PassBuffer> {
  const { config, precision, plan } = input;
  const { dModel, dInner, dState, dConv, nLayer, vocabSize } = config;
  const act = activationBytes(precision);
  const rows = plan.groups[0]!.rows;
  const decimated = maxDecimatedRows(plan);
  const fused = isFusedScan(input.scan);
  const chunks = fused ? 0 : maxScanChunks(plan, input.chunkLen);
  const gathered = fused ? 0 : decimated;
  const positionRows = plan.groups.slice(1).reduce((n, g) => n + g.rows, 0);
  const layout = new Layout<PassBuffer>(input.guardBytes ?? 0);
  const states = plan.nSeq * nLayer * dInner;
  const sizes: Record<PassBuffer, number> = {
    tables: input.tableWords * 4,
    residual: rows * dModel * 4,
    residualAlt: decimated * dModel * 4,
    ...blockBufferBytes(config, precision, rows),
    xGathered: gathered * dInner * act,
    deltaGathered: gathered * dInner * 4,
    zGathered: gathered * dInner * act,
    bcGathered: gathered * 2 * dState * act,
    scores: decimated > 0 ? rows * 8 : 0,
    srcRow: decimated * 4,
    positions: positionRows * 4,
    chunkH: chunks * dInner * dState * 4,
    chunkDeltaSum: chunks * dInner * 4,
    convState: states * dConv * 4,
    ssmState: states * dState * 4,
    initConv: input.withInitState ? states * dConv * 4 : 0,
    initSsm: input.withInitState ? states * dState * 4 : 0,
    headRows: input.headRows * 4,
    headNormed: input.headRows * dModel * act,
    logits: input.headRows * vocabSize * 4,
    status: 16,
  };
  for (const name of PASS_BUFFERS) layout.add(name, sizes[name]);
  return layout;
}

/** Largest head tile (rows of logits at once) under `maxBytes` of logits, at least 1. */
export function headTileRows(vocabSize: number, wanted: number, maxBytes = 1 << 30): number {
  return Math.max(1, Math.min(wanted, Math.floor(maxBytes / (vocabSize * 4))));
}
