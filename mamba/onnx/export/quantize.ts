// Weight quantizers for the exporter. Symmetric (zero point 0 for int8, 8 for 4-bit) keeps the graphs simple.
import type { Tensor } from '../../engine.ts';

export interface Int8Rows {
  values: Int8Array; // [n, k], row-major like the input
  scales: Float32Array; // [n], w ≈ values · scale
}

/** One scale per output row (per output channel), range [-127, 127]. */
export function quantizeInt8PerRow(w: Tensor): Int8Rows {
  const [n, k] = w.shape;
  const values = new Int8Array(n * k);
  const scales = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let max = 0;
    for (let c = 0; c < k; c++) max = Math.max(max, Math.abs(w.data[r * k + c]));
    const scale = max > 0 ? max / 127 : 1;
    scales[r] = scale;
    for (let c = 0; c < k; c++)
      values[r * k + c] = Math.max(-127, Math.min(127, Math.round(w.data[r * k + c] / scale)));
  }
  return { values, scales };
}

export interface Blockwise4 {
  packed: Uint8Array; // [n, blocksPerRow, block/2], two values a byte, low nibble first (MatMulNBits layout)
  scales: Float32Array; // [n * blocksPerRow]
  zeroPoints: Uint8Array; // [n, ceil(blocksPerRow/2)], 4-bit zero points, low nibble first
  blocksPerRow: number;
}

/**
 * MatMulNBits (bits=4) layout, asymmetric: each block of `block` values maps [min, max] onto [0, 15] with its own
 * scale and zero point (w ≈ (q − zp)·scale). Rows shorter than a whole number of blocks are zero-padded.
 */
export function quantizeBlockwise4(w: Tensor, block: number): Blockwise4 {
  const [n, k] = w.shape;
  const blocksPerRow = Math.ceil(k / block);
  const zpBytesPerRow = Math.ceil(blocksPerRow / 2);
  const packed = new Uint8Array(n * blocksPerRow * (block / 2));
  const scales = new Float32Array(n * blocksPerRow);
  const zeroPoints = new Uint8Array(n * zpBytesPerRow);
  for (let r = 0; r < n; r++) {
    for (let b = 0; b < blocksPerRow; b++) {
      const start = b * block;
      const end = Math.min(k, start + block);
      // The range always contains 0 so padding (and exact zeros) stay exact.
      let lo = 0;
      let hi = 0;
      for (let c = start; c < end; c++) {
        lo = Math.min(lo, w.data[r * k + c]);
        hi = Math.max(hi, w.data[r * k + c]);
      }
      const scale = hi > lo ? (hi - lo) / 15 : 1;
      const zp = Math.max(0, Math.min(15, Math.round(-lo / scale)));
      scales[r * blocksPerRow + b] = scale;
      zeroPoints[r * zpBytesPerRow + (b >> 1)] |= b % 2 === 0 ? zp : zp << 4;
      const base = (r * blocksPerRow + b) * (block / 2);
      for (let j = 0; j < block; j++) {
        const c = start + j;
        const q = c < end ? Math.max(0, Math.min(15, Math.round(w.data[r * k + c] / scale) + zp)) : zp;
        if (j % 2 === 0) packed[base + (j >> 1)] = q;
        else packed[base + (j >> 1)] |= q << 4;
      }
    }
  }
  return { packed, scales, zeroPoints, blocksPerRow };
}
