// Kernel checks for the sequence kernels against the reference ops: causal conv1d + SiLU with carried conv states,
// the two-pass chunked selective scan and the one-pass fused scans (scan_fused, scan_fused_t2) over varlen batches.
import { causalConv1dSilu, selectiveScan, softplus } from '../../reference/ops.ts';
import * as ops from '../ops.ts';
import type { DevicePtr } from '../bindings/driver.ts';
import * as scanOps from '../ops-scan.ts';
import { aLog2 } from '../device-weights.ts';
import { randomArray, type Scratch } from './scratch.ts';
import { D_CONV, D_STATE, type KernelCheckContext } from './kernel-check-context.ts';

/** conv1d_silu + conv_state_capture, the chunked scan, then both fused scans (in that order: one RNG). */
export async function checkScanKernels(ctx: KernelCheckContext): Promise<void> {
  const { kernels, s, rng, expectClose, g } = ctx;
  await g('conv1d_silu + conv_state_capture (varlen, carried states)', () => {
    const dInner = 320,
      lengths = [1, 3, 50, 1000];
    const rows = lengths.reduce((a, b) => a + b, 0);
    const seqStart = [0];
    for (const l of lengths) seqStart.push(seqStart[seqStart.length - 1]! + l);
    const rowSeq = new Int32Array(rows);
    lengths.forEach((l, i) => rowSeq.fill(i, seqStart[i]!, seqStart[i + 1]!));
    const xz = s.quantize(randomArray(rows * 2 * dInner, rng, -2, 2));
    const w = randomArray(dInner * D_CONV, rng, -0.5, 0.5),
      b = randomArray(dInner, rng, -0.5, 0.5);
    for (const withInit of [false, true]) {
      const init = randomArray(lengths.length * dInner * D_CONV, rng, -2, 2);
      const out = s.alloc(rows * dInner * s.actBytes);
      const stateOut = s.alloc(lengths.length * dInner * D_CONV * 4);
      const xzP = s.act(xz);
      const initArg = withInit ? { ptr: s.f32(init), seqStride: dInner * D_CONV } : null;
      const tables = { rowSeq: s.i32(rowSeq), seqStart: s.i32(seqStart) };
      ops.causalConv1dSilu(kernels, {
        x: { ptr: xzP, ld: 2 * dInner },
        weight: s.f32(w),
        bias: s.f32(b),
        tables,
        init: initArg,
        out,
        rows,
        dInner,
      });
      ops.convStateCapture(kernels, {
        x: { ptr: xzP, ld: 2 * dInner },
        seqStart: tables.seqStart,
        init: initArg,
        out: { ptr: stateOut, seqStride: dInner * D_CONV },
        nSeq: lengths.length,
        dInner,
      });
      const refOut = new Float32Array(rows * dInner);
      const refState = new Float32Array(lengths.length * dInner * D_CONV);
      lengths.forEach((len, i) => {
        const x = new Float32Array(len * dInner);
        for (let t = 0; t < len; t++)
          x.set(xz.subarray((seqStart[i]! + t) * 2 * dInner, (seqStart[i]! + t) * 2 * dInner + dInner), t * dInner);
        const st = withInit
          ? init.subarray(i * dInner * D_CONV, (i + 1) * dInner * D_CONV)
          : new Float32Array(dInner * D_CONV);
        const r = causalConv1dSilu(x, len, st, w, b, dInner, D_CONV);
        refOut.set(r.out, seqStart[i]! * dInner);
        refState.set(r.state, i * dInner * D_CONV);
      });
      expectClose(`conv1d_silu${withInit ? ' +state' : ''}`, s.readAct(out, rows * dInner), refOut);
      expectClose(`conv_state_capture${withInit ? ' +state' : ''}`, s.readF32(stateOut, refState.length), refState, 0);
    }
  });

  await g('selective scan (chunked, varlen, h0, Δ formed in pass 1)', () => {
    const dInner = 256,
      dtRank = 8,
      dbl = dtRank + 2 * D_STATE,
      lengths = [1, 5, 300, 4099];
    const rows = lengths.reduce((a, b) => a + b, 0);
    const seqStart = [0];
    for (const l of lengths) seqStart.push(seqStart[seqStart.length - 1]! + l);
    const xz = s.quantize(randomArray(rows * 2 * dInner, rng, -2, 2));
    const xDbl = s.quantize(randomArray(rows * dbl, rng, -1, 1));
    // the raw dt and its bias; Δ = softplus(dt + bias) is what the scan sees, given or formed in the first pass
    const rawDt = Float32Array.from({ length: rows * dInner }, () => -3 + 4 * rng.next());
    const dtBias = randomArray(dInner, rng, -1, 0);
    const delta = rawDt.map((v, i) => softplus(v + dtBias[i % dInner]!));
    const aLog = Float32Array.from(
      { length: dInner * D_STATE },
      (_, i) => Math.log(1 + (i % D_STATE)) + 0.1 * rng.next(),
    );
    const dSkip = randomArray(dInner, rng, 0.5, 1.5);
    const h0 = randomArray(lengths.length * dInner * D_STATE, rng, -1, 1);
    for (const [chunkLen, withH0, formDelta] of [
      [64, true, false],
      [2048, false, true],
      [16, true, true],
    ] as [number, boolean, boolean][]) {
      const chunkStart: number[] = [],
        chunkLens: number[] = [],
        seqFirst = [0];
      lengths.forEach((len, i) => {
        for (let t = 0; t < len; t += chunkLen) {
          chunkStart.push(seqStart[i]! + t);
          chunkLens.push(Math.min(chunkLen, len - t));
        }
        seqFirst.push(chunkStart.length);
      });
      const xzP = s.act(xz),
        xDblP = s.act(xDbl),
        ab = s.actBytes;
      const y = s.alloc(rows * dInner * ab);
      const hOut = s.alloc(lengths.length * dInner * D_STATE * 4);
      const deltaP = s.f32(formDelta ? rawDt : delta);
      scanOps.selectiveScan(kernels, {
        inputs: scanInputsAt(s, { xz: xzP, xDbl: xDblP, delta: deltaP, dInner, dtRank }, aLog, dSkip),
        dtBias: formDelta ? s.f32(dtBias) : null,
        chunks: {
          chunkStart: s.i32(chunkStart),
          chunkLen: s.i32(chunkLens),
          seqFirstChunk: s.i32(seqFirst),
          count: chunkStart.length,
        },
        scratch: {
          chunkH: s.alloc(chunkStart.length * dInner * D_STATE * 4),
          chunkDeltaSum: s.alloc(chunkStart.length * dInner * 4),
        },
        h0: withH0 ? { ptr: s.f32(h0), seqStride: dInner * D_STATE } : null,
        hOut: { ptr: hOut, seqStride: dInner * D_STATE },
        y: { ptr: y, ld: dInner },
        nSeq: lengths.length,
        dInner,
        dState: D_STATE,
      });
      const a = Float64Array.from(aLog, (v) => -Math.exp(v));
      const refY = new Float32Array(rows * dInner),
        refH = new Float32Array(lengths.length * dInner * D_STATE);
      lengths.forEach((len, i) => {
        const cols = (src: Float32Array, width: number, from: number, count: number) => {
          const out = new Float32Array(len * count);
          for (let t = 0; t < len; t++)
            out.set(
              src.subarray((seqStart[i]! + t) * width + from, (seqStart[i]! + t) * width + from + count),
              t * count,
            );
          return out;
        };
        const h = withH0
          ? h0.slice(i * dInner * D_STATE, (i + 1) * dInner * D_STATE)
          : new Float32Array(dInner * D_STATE);
        const yi = selectiveScan(
          cols(xz, 2 * dInner, 0, dInner),
          cols(delta, dInner, 0, dInner),
          a,
          cols(xDbl, dbl, dtRank, D_STATE),
          cols(xDbl, dbl, dtRank + D_STATE, D_STATE),
          dSkip,
          cols(xz, 2 * dInner, dInner, dInner),
          h,
          len,
          dInner,
          D_STATE,
        );
        refY.set(yi, seqStart[i]! * dInner);
        refH.set(h, i * dInner * D_STATE);
      });
      const name = `chunk=${chunkLen}${withH0 ? ' h0' : ''}${formDelta ? ' Δ in pass 1' : ''}`;
      expectClose(`scan y ${name}`, s.readAct(y, rows * dInner), refY, kernels.build.actBf16 ? 1e-2 : 2e-5);
      expectClose(`scan final state ${name}`, s.readF32(hOut, refH.length), refH, 2e-5);
      if (formDelta) expectClose(`scan Δ written back ${name}`, s.readF32(deltaP, delta.length), delta, 2e-6);
    }
  });

  for (const twoWarps of [false, true])
    await g(`scan_fused${twoWarps ? '_t2' : ''} (varlen, h0, kept rows read in place)`, () => {
      const dInner = 262,
        dtRank = 8,
        dbl = dtRank + 2 * D_STATE,
        lengths = [1, 256, 257, 4099]; // 262: part-filled blocks
      const rows = lengths.reduce((a, b) => a + b, 0);
      const seqStart = [0];
      for (const l of lengths) seqStart.push(seqStart[seqStart.length - 1]! + l);
      const xz = s.quantize(randomArray(rows * 2 * dInner, rng, -2, 2));
      const xDbl = s.quantize(randomArray(rows * dbl, rng, -1, 1));
      const dt = randomArray(rows * dInner, rng, -4, 0);
      const bias = randomArray(dInner, rng, -1, 1);
      const aLog = Float32Array.from(
        { length: dInner * D_STATE },
        (_, i) => Math.log(1 + (i % D_STATE)) + 0.1 * rng.next(),
      );
      const dSkip = randomArray(dInner, rng, 0.5, 1.5);
      const h0 = randomArray(lengths.length * dInner * D_STATE, rng, -1, 1);
      const a = Float64Array.from(aLog, (v) => -Math.exp(v));
      const xzP = s.act(xz),
        xDblP = s.act(xDbl),
        ab = s.actBytes;
      for (const [sparse, withH0] of [
        [false, true],
        [true, false],
      ] as [boolean, boolean][]) {
        // rowIdx: each sequence keeps rows t with t % 3 != 1 (its first row always), in order
        const kept = lengths.map((len, i) =>
          Array.from({ length: len }, (_, t) => seqStart[i]! + t).filter((r, t) => !sparse || t % 3 !== 1),
        );
        const outStart = [0];
        for (const k of kept) outStart.push(outStart[outStart.length - 1]! + k.length);
        const outRows = outStart[outStart.length - 1]!;
        const y = s.alloc(outRows * dInner * ab);
        const hOut = s.alloc(lengths.length * dInner * D_STATE * 4);
        scanOps.fusedScan(kernels, {
          inputs: scanInputsAt(s, { xz: xzP, xDbl: xDblP, delta: s.f32(dt), dInner, dtRank }, aLog, dSkip),
          dtBias: s.f32(bias),
          seqStart: s.i32(outStart),
          rowIdx: sparse ? s.i32(kept.flat()) : null,
          h0: withH0 ? { ptr: s.f32(h0), seqStride: dInner * D_STATE } : null,
          hOut: { ptr: hOut, seqStride: dInner * D_STATE },
          y: { ptr: y, ld: dInner },
          nSeq: lengths.length,
          dInner,
          twoWarps,
        });
        const refY = new Float32Array(outRows * dInner),
          refH = new Float32Array(lengths.length * dInner * D_STATE);
        kept.forEach((rowsOf, i) => {
          const cols = (
            src: Float32Array,
            width: number,
            from: number,
            count: number,
            f = (v: number, _c: number) => v,
          ) => {
            const out = new Float32Array(rowsOf.length * count);
            rowsOf.forEach((r, t) => {
              for (let c = 0; c < count; c++) out[t * count + c] = f(src[r * width + from + c]!, c);
            });
            return out;
          };
          const h = withH0
            ? h0.slice(i * dInner * D_STATE, (i + 1) * dInner * D_STATE)
            : new Float32Array(dInner * D_STATE);
          const delta = cols(dt, dInner, 0, dInner, (v, c) => softplus(v + bias[c]!));
          const yi = selectiveScan(
            cols(xz, 2 * dInner, 0, dInner),
            delta,
            a,
            cols(xDbl, dbl, dtRank, D_STATE),
            cols(xDbl, dbl, dtRank + D_STATE, D_STATE),
            dSkip,
            cols(xz, 2 * dInner, dInner, dInner),
            h,
            rowsOf.length,
            dInner,
            D_STATE,
          );
          refY.set(yi, outStart[i]! * dInner);
          refH.set(h, i * dInner * D_STATE);
        });
        const what = `${sparse ? 'kept rows' : 'all rows'}${withH0 ? ' h0' : ''}`;
        const kernel = twoWarps ? 'scan_fused_t2' : 'scan_fused';
        expectClose(`${kernel} y ${what}`, s.readAct(y, outRows * dInner), refY, kernels.build.actBf16 ? 1e-2 : 2e-5);
        expectClose(`${kernel} final state ${what}`, s.readF32(hOut, refH.length), refH, 2e-5);
      }
    });
}

/** The scan's operands where the engine has them: x then z in xz, dt then B and C in xDbl; A and D uploaded here. */
function scanInputsAt(
  s: Scratch,
  at: { xz: DevicePtr; xDbl: DevicePtr; delta: DevicePtr; dInner: number; dtRank: number },
  aLog: Float32Array,
  dSkip: Float32Array,
): scanOps.ScanInputs {
  const { xz, xDbl, dInner, dtRank } = at;
  const [ab, dbl] = [s.actBytes, dtRank + 2 * D_STATE];
  return {
    x: { ptr: xz, ld: 2 * dInner },
    delta: { ptr: at.delta, ld: dInner },
    z: { ptr: xz + dInner * ab, ld: 2 * dInner },
    b: { ptr: xDbl + dtRank * ab, ld: dbl },
    c: { ptr: xDbl + (dtRank + D_STATE) * ab, ld: dbl },
    aLog2: s.f32(aLog2(aLog)),
    dSkip: s.f32(dSkip),
  };
}
