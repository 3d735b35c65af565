// Kernel argument builders shared by the launchers in ops.ts and ops-scan.ts.
import type { DevicePtr, KernelArg } from './bindings/driver.ts';

export const ptr = (p: DevicePtr | null): KernelArg => ({ ptr: p });
export const i32 = (v: number): KernelArg => ({ i32: v });
export const i64 = (v: number): KernelArg => ({ i64: v });
export const f32 = (v: number): KernelArg => ({ f32: v });
/** A matrix argument as the kernels take it: base pointer, then row stride. */
export const mat = (m: { ptr: DevicePtr; ld: number }): KernelArg[] => [ptr(m.ptr), i64(m.ld)];

/**
 * Bytes a launch asks L2 for on behalf of later launches (kernels/prelude.cuh l2_prefetch): `count` ranges of `bytes`,
 * `stride` bytes apart from `ptr` (one range: count 1).
 */
export interface L2Range {
  ptr: DevicePtr;
  bytes: number;
  stride: number;
  count: number;
}

/** An L2 prefetch as the kernels take it (L2_PREFETCH_PARAMS); null asks for nothing. */
export function l2Prefetch(r: L2Range | null): KernelArg[] {
  if (r && [r.ptr, r.bytes, r.stride].some((v) => v % 16 !== 0))
    throw new RangeError(
      `L2 prefetch: address, size and stride must be multiples of 16 (${r.ptr}, ${r.bytes}, ${r.stride})`,
    );
  return [ptr(r?.ptr ?? null), i64(r?.bytes ?? 0), i64(r?.stride ?? 0), i32(r?.count ?? 0)];
}

/** Per-sequence state blocks (conv or ssm) at `ptr`, `seqStride` f32 words apart; null reads as "start from zero". */
export interface SeqStates {
  ptr: DevicePtr;
  seqStride: number;
}
/** A state argument as the kernels take it: base pointer (null allowed), then the sequence stride. */
export const states = (s: SeqStates | null): KernelArg[] => [ptr(s?.ptr ?? null), i64(s?.seqStride ?? 0)];

/** Threads for a row-wise kernel over `width` elements: a multiple of 32, at most 256. */
export function rowThreads(width: number): number {
  return Math.min(256, Math.max(32, Math.ceil(width / 32) * 32));
}

/** One thread per element (per (sequence, channel) or (sequence, channel, state)) over `n` elements, 256 a block. */
export function threadPerElement(n: number): { grid: [number]; block: [number] } {
  return { grid: [Math.ceil(n / 256)], block: [256] };
}

/** Blocks for a grid-stride elementwise kernel. */
export function strideBlocks(n: number, threads: number): number {
  return Math.max(1, Math.min(Math.ceil(n / threads), 65535));
}
