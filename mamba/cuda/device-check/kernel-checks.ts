// Each kernel against the TypeScript reference ops (mamba/reference/ops.ts, decimation.ts) on fresh random inputs:
// relative error ‖out − ref‖/‖ref‖ against a tolerance for the build (f32: 1e-5; bf16 activations: 1e-2, with the
// reference fed the same bf16-rounded inputs), outputs poisoned with NaN beforehand so an unwritten element fails.
import { deltaScores, selectKept } from '../../decimation.ts';
import { f32ToBf16Bits } from '../../safetensors.ts';
import { causalConv1dSilu, linear as refLinear, rmsNorm, selectiveScan, silu, softplus } from '../../reference/ops.ts';
import { createRng } from '../../rng.ts';
import type { CudaDevice, KernelSet } from '../device.ts';
import * as ops from '../ops.ts';
import * as scanOps from '../ops-scan.ts';
import { aLog2 } from '../device-weights.ts';
import { compare, type Report } from './report.ts';
import { NAN_WORD, randomArray, Scratch } from './scratch.ts';

const D_STATE = 16;
const D_CONV = 4;

export async function runKernelChecks(
  device: CudaDevice,
  kernels: KernelSet,
  report: Report,
  seed: number,
): Promise<void> {
  const s = new Scratch(device, kernels);
  const build = kernels.build.actBf16 ? 'bf16' : 'f32';
  const section = `kernels-${build}`;
  const tol = kernels.build.actBf16 ? 1e-2 : 1e-5;
  const rng = createRng(seed);
  const expectClose = (name: string, got: ArrayLike<number>, ref: ArrayLike<number>, t = tol) => {
    const c = compare(got, ref);
    report.check(section, name, !c.nan && c.relErr <= t, { relErr: c.relErr, maxAbs: c.maxAbs, tol: t, nan: c.nan });
  };
  const g = (name: string, fn: () => void) => report.guard(section, name, fn);
  try {
    await g('embed_rows', () => {
      const vocab = 1000,
        dModel = 96,
        rows = 257;
      const table = randomArray(vocab * dModel, rng);
      const ids = Int32Array.from({ length: rows }, () => rng.int(vocab));
      const out = s.alloc(rows * dModel * 4);
      ops.embed(kernels, s.i32(ids), s.f32(table), out, rows, dModel);
      const ref = new Float32Array(rows * dModel);
      ids.forEach((id, r) => ref.set(table.subarray(id * dModel, (id + 1) * dModel), r * dModel));
      expectClose('embed_rows', s.readF32(out, rows * dModel), ref, 0);
    });

    await g('add_rmsnorm', () => {
      for (const [dim, first] of [
        [768, false],
        [2048, true],
        [40, false],
      ] as [number, boolean][]) {
        const rows = 129;
        const hidden = randomArray(rows * dim, rng, -3, 3);
        const residual = randomArray(rows * dim, rng, -3, 3);
        const w = randomArray(dim, rng, 0.5, 1.5);
        const res = s.f32(residual);
        const normed = s.alloc(rows * dim * s.actBytes);
        ops.addRmsNorm(kernels, {
          hidden: s.f32(hidden),
          residual: res,
          normed,
          weight: s.f32(w),
          rows,
          dim,
          eps: 1e-5,
          first,
        });
        const sum = first ? hidden : hidden.map((v, i) => v + residual[i]!);
        expectClose(`add_rmsnorm residual d=${dim}${first ? ' first' : ''}`, s.readF32(res, rows * dim), sum, 1e-6);
        expectClose(
          `add_rmsnorm normed d=${dim}${first ? ' first' : ''}`,
          s.readAct(normed, rows * dim),
          rmsNorm(sum, rows, w, 1e-5),
        );
      }
    });

    await g('final_rmsnorm_rows', () => {
      const rows = 50,
        dim = 256;
      const hidden = randomArray(rows * dim, rng),
        residual = randomArray(rows * dim, rng),
        w = randomArray(dim, rng, 0.5, 1.5);
      const pick = Int32Array.from([49, 0, 7, 7]);
      const out = s.alloc(pick.length * dim * s.actBytes);
      ops.finalNorm(kernels, {
        hidden: s.f32(hidden),
        residual: s.f32(residual),
        rowIdx: s.i32(pick),
        out,
        weight: s.f32(w),
        nOut: pick.length,
        dim,
        eps: 1e-5,
      });
      const sum = hidden.map((v, i) => v + residual[i]!);
      const normed = rmsNorm(sum, rows, w, 1e-5);
      const ref = new Float32Array(pick.length * dim);
      pick.forEach((r, j) => ref.set(normed.subarray(r * dim, (r + 1) * dim), j * dim));
      expectClose('final_rmsnorm_rows', s.readAct(out, pick.length * dim), ref);
    });

    await g('cuBLAS linear', () => {
      for (const [rows, k, n, ldx] of [
        [333, 768, 1000, 768],
        [64, 48, 1536, 80],
        [1, 2048, 50280, 2048],
      ] as const) {
        const x = s.quantize(randomArray(rows * ldx, rng));
        const w = s.quantize(randomArray(n * k, rng, -0.05, 0.05));
        const y = s.alloc(rows * n * 4);
        const type = kernels.build.actBf16 ? 'bf16' : 'f32';
        ops.linear(
          device,
          {
            x: { ptr: s.act(x), ld: ldx },
            w: { ptr: s.act(w), ld: k },
            y: { ptr: y, ld: n },
            rows,
            k,
            n,
            xType: type,
            wType: type,
            yType: 'f32',
          },
          'gemm',
        );
        const xs = new Float32Array(rows * k);
        for (let r = 0; r < rows; r++) xs.set(x.subarray(r * ldx, r * ldx + k), r * k);
        expectClose(
          `linear ${type} ${rows}x${k}·${n}x${k}ᵀ ld=${ldx}`,
          s.readF32(y, rows * n),
          refLinear(xs, rows, w, n),
          kernels.build.actBf16 ? 1e-4 : 1e-5,
        );
      }
    });

    await g('dt_softplus', () => {
      const rows = 300,
        dInner = 384;
      const v = randomArray(rows * dInner, rng, -30, 30),
        bias = randomArray(dInner, rng, -5, 1);
      const p = s.f32(v);
      ops.timeStep(kernels, p, s.f32(bias), rows, dInner);
      expectClose(
        'dt_softplus',
        s.readF32(p, rows * dInner),
        v.map((x, i) => softplus(x + bias[i % dInner]!)),
        1e-6,
      );
    });

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
          out: stateOut,
          outSeqStride: dInner * D_CONV,
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
        expectClose(
          `conv_state_capture${withInit ? ' +state' : ''}`,
          s.readF32(stateOut, refState.length),
          refState,
          0,
        );
      }
    });

    await g('selective scan (chunked, varlen, h0)', () => {
      const dInner = 256,
        dtRank = 8,
        dbl = dtRank + 2 * D_STATE,
        lengths = [1, 5, 300, 4099];
      const rows = lengths.reduce((a, b) => a + b, 0);
      const seqStart = [0];
      for (const l of lengths) seqStart.push(seqStart[seqStart.length - 1]! + l);
      const xz = s.quantize(randomArray(rows * 2 * dInner, rng, -2, 2));
      const xDbl = s.quantize(randomArray(rows * dbl, rng, -1, 1));
      const delta = Float32Array.from({ length: rows * dInner }, () => softplus(-4 + 4 * rng.next()));
      const aLog = Float32Array.from(
        { length: dInner * D_STATE },
        (_, i) => Math.log(1 + (i % D_STATE)) + 0.1 * rng.next(),
      );
      const dSkip = randomArray(dInner, rng, 0.5, 1.5);
      const h0 = randomArray(lengths.length * dInner * D_STATE, rng, -1, 1);
      for (const [chunkLen, withH0] of [
        [64, true],
        [2048, false],
        [16, true],
      ] as [number, boolean][]) {
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
        scanOps.selectiveScan(kernels, {
          inputs: {
            x: { ptr: xzP, ld: 2 * dInner },
            delta: { ptr: s.f32(delta), ld: dInner },
            z: { ptr: xzP + dInner * ab, ld: 2 * dInner },
            b: { ptr: xDblP + dtRank * ab, ld: dbl },
            c: { ptr: xDblP + (dtRank + D_STATE) * ab, ld: dbl },
            aLog2: s.f32(aLog2(aLog)),
            dSkip: s.f32(dSkip),
          },
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
        expectClose(
          `scan y chunk=${chunkLen}${withH0 ? ' h0' : ''}`,
          s.readAct(y, rows * dInner),
          refY,
          kernels.build.actBf16 ? 1e-2 : 2e-5,
        );
        expectClose(
          `scan final state chunk=${chunkLen}${withH0 ? ' h0' : ''}`,
          s.readF32(hOut, refH.length),
          refH,
          2e-5,
        );
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
            inputs: {
              x: { ptr: xzP, ld: 2 * dInner },
              delta: { ptr: s.f32(dt), ld: dInner },
              z: { ptr: xzP + dInner * ab, ld: 2 * dInner },
              b: { ptr: xDblP + dtRank * ab, ld: dbl },
              c: { ptr: xDblP + (dtRank + D_STATE) * ab, ld: dbl },
              aLog2: s.f32(aLog2(aLog)),
              dSkip: s.f32(dSkip),
            },
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

    await g('log_softmax / argmax', () => {
      const rows = 5,
        vocab = 50280;
      const logits = randomArray(rows * vocab, rng, -20, 20);
      logits[2 * vocab + 777] = 50;
      logits[2 * vocab + 1234] = 50; // tie: the lower id wins
      const p = s.f32(logits);
      const am = s.alloc(rows * 4);
      ops.argmax(kernels, p, rows, vocab, am);
      const refArg = Array.from({ length: rows }, (_, r) => {
        let best = 0;
        for (let v = 1; v < vocab; v++) if (logits[r * vocab + v]! > logits[r * vocab + best]!) best = v;
        return best;
      });
      report.check(
        section,
        'argmax_rows (ties to the lower id)',
        Array.from(s.readI32(am, rows)).every((v, i) => v === refArg[i]),
        { expected: refArg.join(',') },
      );
      ops.logSoftmax(kernels, p, rows, vocab);
      const ref = new Float32Array(rows * vocab);
      for (let r = 0; r < rows; r++) {
        const row = logits.subarray(r * vocab, (r + 1) * vocab);
        const m = Math.max(...row);
        const z = m + Math.log(row.reduce((acc, v) => acc + Math.exp(v - m), 0));
        for (let v = 0; v < vocab; v++) ref[r * vocab + v] = row[v]! - z;
      }
      expectClose('log_softmax_rows', s.readF32(p, rows * vocab), ref, 1e-6);
    });

    await g('conv_step + ssm_step', () => {
      const batch = 3,
        dInner = 200,
        dtRank = 4,
        dbl = dtRank + 2 * D_STATE;
      const xz = s.quantize(randomArray(batch * 2 * dInner, rng, -2, 2));
      const xDbl = s.quantize(randomArray(batch * dbl, rng));
      const convState = randomArray(batch * dInner * D_CONV, rng, -2, 2);
      const ssmState = randomArray(batch * dInner * D_STATE, rng);
      const w = randomArray(dInner * D_CONV, rng, -0.5, 0.5),
        b = randomArray(dInner, rng);
      const delta = Float32Array.from({ length: batch * dInner }, () => softplus(-3 + 3 * rng.next()));
      const aLog = Float32Array.from({ length: dInner * D_STATE }, (_, i) => Math.log(1 + (i % D_STATE)));
      const dSkip = randomArray(dInner, rng, 0.5, 1.5);
      const ab = s.actBytes;
      const xzP = s.act(xz),
        xDblP = s.act(xDbl),
        convP = s.f32(convState),
        ssmP = s.f32(ssmState);
      const xOut = s.alloc(batch * dInner * ab),
        y = s.alloc(batch * dInner * ab);
      ops.convStep(kernels, {
        x: { ptr: xzP, ld: 2 * dInner },
        state: { ptr: convP, seqStride: dInner * D_CONV },
        weight: s.f32(w),
        bias: s.f32(b),
        out: xOut,
        batch,
        dInner,
      });
      const xConv = s.readAct(xOut, batch * dInner);
      ops.ssmStep(kernels, {
        x: xOut,
        delta: s.f32(delta),
        z: { ptr: xzP + dInner * ab, ld: 2 * dInner },
        b: xDblP + dtRank * ab,
        c: xDblP + (dtRank + D_STATE) * ab,
        bcStride: dbl,
        aLog2: s.f32(aLog2(aLog)),
        dSkip: s.f32(dSkip),
        state: { ptr: ssmP, seqStride: dInner * D_STATE },
        y,
        batch,
        dInner,
      });
      const refX = new Float32Array(batch * dInner),
        refConv = new Float32Array(convState.length),
        refY = new Float32Array(batch * dInner),
        refSsm = new Float32Array(ssmState.length);
      const a = Float64Array.from(aLog, (v) => -Math.exp(v));
      for (let bi = 0; bi < batch; bi++) {
        const x = xz.subarray(bi * 2 * dInner, bi * 2 * dInner + dInner);
        const c = causalConv1dSilu(
          x,
          1,
          convState.subarray(bi * dInner * D_CONV, (bi + 1) * dInner * D_CONV),
          w,
          b,
          dInner,
          D_CONV,
        );
        refX.set(c.out, bi * dInner);
        refConv.set(c.state, bi * dInner * D_CONV);
        const h = ssmState.slice(bi * dInner * D_STATE, (bi + 1) * dInner * D_STATE);
        const xq = xConv.subarray(bi * dInner, (bi + 1) * dInner); // what the device fed ssm_step
        const yi = selectiveScan(
          xq,
          delta.subarray(bi * dInner, (bi + 1) * dInner),
          a,
          xDbl.subarray(bi * dbl + dtRank, bi * dbl + dtRank + D_STATE),
          xDbl.subarray(bi * dbl + dtRank + D_STATE, (bi + 1) * dbl),
          dSkip,
          xz.subarray(bi * 2 * dInner + dInner, (bi + 1) * 2 * dInner),
          h,
          1,
          dInner,
          D_STATE,
        );
        refY.set(yi, bi * dInner);
        refSsm.set(h, bi * dInner * D_STATE);
      }
      expectClose('conv_step x', xConv, refX);
      expectClose('conv_step state', s.readF32(convP, convState.length), refConv, 0);
      expectClose('ssm_step y', s.readAct(y, batch * dInner), refY);
      expectClose('ssm_step state', s.readF32(ssmP, ssmState.length), refSsm, 1e-5);
      void silu;
    });

    await g('convert_f32_to_bf16', () => {
      const v = randomArray(10001, rng, -1e3, 1e3);
      v[0] = NaN;
      v[1] = Infinity;
      v[2] = -0;
      const dst = s.alloc(v.length * 2);
      ops.convertToBf16(kernels, s.f32(v), dst, v.length);
      const got = device.download(new Uint16Array(v.length), dst);
      let bad = 0;
      for (let i = 0; i < v.length; i++) if (got[i] !== f32ToBf16Bits(v[i]!)) bad++;
      report.check(section, 'convert_f32_to_bf16 (round to nearest even)', bad === 0, { mismatches: bad });
    });
  } finally {
    s.free();
  }
}
