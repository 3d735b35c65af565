// Kernel checks for DeciMamba's decimation kernels against mamba/decimation.ts: Δ-norm scores, the radix top-K row
// selection (ties, NaN, 128K contexts) and the row gathers that pack the kept rows.
import { deltaScores, selectKept } from '../../decimation.ts';
import { softplus } from '../../reference/ops.ts';
import * as scanOps from '../ops-scan.ts';
import { NAN_WORD } from './scratch.ts';
import type { KernelCheckContext } from './kernel-check-context.ts';

/** delta_score, decimate_select, then gather_rows (in that order: one RNG). */
export async function checkDecimationKernels(ctx: KernelCheckContext): Promise<void> {
  const { device, kernels, report, section, s, rng, expectClose, g } = ctx;
  await g('delta_score', () => {
    const dInner = 1536,
      lengths = [700, 300];
    const rows = 1000;
    const delta = Float32Array.from({ length: rows * dInner }, () => softplus(-3 + 3 * rng.next()));
    const context = [690, 0];
    const scores = s.alloc(rows * 8);
    const rowSeq = new Int32Array(rows).fill(1, 0, rows);
    rowSeq.fill(0, 0, 700);
    scanOps.deltaScores(kernels, {
      delta: { ptr: s.f32(delta), ld: dInner },
      tables: { rowSeq: s.i32(rowSeq), seqStart: s.i32([0, 700, 1000]) },
      contextLen: s.i32(context),
      scores,
      rows,
      dInner,
    });
    const got = s.readF64(scores, rows);
    const ref = deltaScores(delta, dInner, 690);
    expectClose('delta_score (f64)', got.subarray(0, 690), ref, 1e-12);
    const untouched = new Uint32Array(got.buffer, 690 * 8).every((w) => w === NAN_WORD); // still the poison pattern
    report.check(section, 'delta_score leaves other rows alone', untouched, { rows: rows - 690 });
    void lengths;
  });

  await g('decimate_select (radix top-K, ties, NaN, 128K)', () => {
    const lengths = [131072 + 13, 5000, 300, 50, 40];
    const seqStart = [0];
    for (const l of lengths) seqStart.push(seqStart[seqStart.length - 1]! + l);
    const protect = [13, 10, 10, 5, 1];
    const context = lengths.map((l, i) => l - protect[i]!);
    const keep = [2000, 1000, 100, -1, 0];
    const scores = new Float64Array(seqStart[lengths.length]!);
    for (let i = 0; i < scores.length; i++) scores[i] = rng.next() * 10;
    for (let t = 0; t < lengths[2]!; t++) scores[seqStart[2]! + t] = Math.floor(rng.next() * 4); // 4 distinct values: ties everywhere
    for (let t = 0; t < 500; t++) scores[seqStart[1]! + rng.int(lengths[1]!)] = NaN;
    for (let t = 0; t < 300; t++) scores[rng.int(lengths[0]!)] = 5; // exact ties across the threshold
    const newLen = lengths.map((l, i) => (keep[i]! >= 0 ? keep[i]! + protect[i]! : l));
    const newStart = [0];
    for (const l of newLen) newStart.push(newStart[newStart.length - 1]! + l);
    const srcRow = s.alloc(newStart[lengths.length]! * 4);
    const status = s.i32([0]);
    scanOps.selectKept(kernels, {
      scores: s.f64(scores),
      seqStart: s.i32(seqStart),
      contextLen: s.i32(context),
      keep: s.i32(keep),
      newStart: s.i32(newStart),
      srcRow,
      status,
      nSeq: lengths.length,
    });
    const got = s.readI32(srcRow, newStart[lengths.length]!);
    const ref = new Int32Array(got.length);
    lengths.forEach((len, i) => {
      let rowsOut: number[];
      if (keep[i]! < 0) rowsOut = Array.from({ length: len }, (_, t) => t);
      else {
        const top = Array.from(selectKept(scores.subarray(seqStart[i]!, seqStart[i]! + context[i]!), keep[i]!));
        rowsOut = [...top, ...Array.from({ length: protect[i]! }, (_, j) => context[i]! + j)];
      }
      rowsOut.forEach((r, j) => (ref[newStart[i]! + j] = seqStart[i]! + r));
    });
    let mismatches = 0;
    for (let i = 0; i < ref.length; i++) if (got[i] !== ref[i]) mismatches++;
    report.check(section, 'decimate_select = selectKept + tail', mismatches === 0 && s.readI32(status, 1)[0] === 0, {
      rows: ref.length,
      mismatches,
    });
  });

  await g('gather_rows', () => {
    const rows = 200,
      width = 97,
      picked = Int32Array.from({ length: 77 }, () => rng.int(rows));
    for (const elementBytes of [4, 2] as const) {
      const words = new Uint32Array(rows * 100).map(() => rng.int(0xffffffff));
      const src = s.alloc(words.byteLength, false);
      device.upload(src, words);
      const dst = s.alloc(picked.length * width * elementBytes);
      const offset = elementBytes === 2 ? 1 : 0; // a 2-byte offset forces the 16-bit path
      scanOps.gatherRows(kernels, {
        src: { ptr: src + offset * elementBytes, ld: 100 * (4 / elementBytes) },
        dst: { ptr: dst, ld: width },
        width,
        elementBytes,
        srcRow: s.i32(picked),
        nRows: picked.length,
      });
      const bytes = new Uint8Array(words.buffer);
      const ref = new Uint8Array(picked.length * width * elementBytes);
      picked.forEach((r, j) =>
        ref.set(
          bytes.subarray(r * 400 + offset * elementBytes, r * 400 + offset * elementBytes + width * elementBytes),
          j * width * elementBytes,
        ),
      );
      const got = device.download(new Uint8Array(ref.length), dst);
      report.check(
        section,
        `gather_rows ${elementBytes * 8}-bit`,
        got.every((v, i) => v === ref[i]),
        { rows: picked.length, width },
      );
    }
  });
}
