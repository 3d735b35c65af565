// Each kernel against the TypeScript reference ops (mamba/reference/ops.ts, decimation.ts) on fresh random inputs:
// relative error ‖out − ref‖/‖ref‖ against a tolerance for the build (f32: 1e-5; bf16 activations: 1e-2, with the
// reference fed the same bf16-rounded inputs), outputs poisoned with NaN beforehand so an unwritten element fails.
// This file runs them in order and holds the row-wise, logits and decode-step checks; the sequence kernels are in
// kernel-checks-scan.ts and the decimation kernels in kernel-checks-decimation.ts.
import { f32ToBf16Bits } from '../../safetensors.ts';
import { causalConv1dSilu, linear as refLinear, rmsNorm, selectiveScan, silu, softplus } from '../../reference/ops.ts';
import * as ops from '../ops.ts';
import { SSM_STEP_SEQS } from '../kernels/manifest.ts';
import { headGreedy, headGreedyBlocks } from '../ops-step.ts';
import { aLog2 } from '../device-weights.ts';
import { randomArray } from './scratch.ts';
import type { DevicePtr } from '../bindings/driver.ts';
import type { CudaDevice, KernelSet } from '../device.ts';
import { D_CONV, D_STATE, kernelCheckContext } from './kernel-check-context.ts';
import { checkDecimationKernels } from './kernel-checks-decimation.ts';
import { checkScanKernels } from './kernel-checks-scan.ts';
import type { Report } from './report.ts';

export async function runKernelChecks(
  device: CudaDevice,
  kernels: KernelSet,
  report: Report,
  seed: number,
): Promise<void> {
  const ctx = kernelCheckContext(device, kernels, report, seed);
  const { section, s, rng, expectClose, g } = ctx;
  try {
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
        // the first block gathers its rows from an embedding table (rows repeat ids; hidden is not read)
        const vocab = 1000;
        const table = randomArray(vocab * dim, rng, -3, 3);
        const ids = Int32Array.from({ length: rows }, () => rng.int(vocab));
        ops.addRmsNorm(kernels, {
          hidden: s.f32(hidden),
          residual: res,
          normed,
          weight: s.f32(w),
          rows,
          dim,
          eps: 1e-5,
          embed: first ? { ids: s.i32(ids), table: s.f32(table) } : null,
        });
        const gathered = new Float32Array(rows * dim);
        ids.forEach((id, r) => gathered.set(table.subarray(id * dim, (id + 1) * dim), r * dim));
        const sum = first ? gathered : hidden.map((v, i) => v + residual[i]!);
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

    await checkScanKernels(ctx);
    await checkDecimationKernels(ctx);

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

    // head_greedy at the 130m head (50280 rows, d 768), 8 sequences, launched twice: each token must score within
    // the build's rounding of its row's best (the reference: the normed rows rounded as staged, f64 dot products), the
    // next step's ids must equal it, the arrival counter must be back at 0; then the winner of sequence 0 is copied to
    // a lower and a higher row, and the exact tie must go to the lower id
    await g('head_greedy', () => {
      const batch = 8,
        dim = 768,
        vocab = 50280;
      const hidden = randomArray(batch * dim, rng, -3, 3);
      const residual = randomArray(batch * dim, rng, -3, 3);
      const normW = randomArray(dim, rng, 0.5, 1.5);
      const w = s.quantize(randomArray(vocab * dim, rng, -0.5, 0.5));
      const normed = s.quantize(
        rmsNorm(
          hidden.map((v, i) => v + residual[i]!),
          batch,
          normW,
          1e-5,
        ),
      );
      const logitsOf = (wr: Float32Array) =>
        Array.from({ length: batch }, (_, b) =>
          Float64Array.from({ length: vocab }, (_, o) => {
            let t = 0;
            for (let i = 0; i < dim; i++) t += wr[o * dim + i]! * normed[b * dim + i]!;
            return t;
          }),
        );
      const argmaxOf = (row: Float64Array) => row.reduce((best, v, i) => (v > row[best]! ? i : best), 0);
      const bufs = { hidden: s.f32(hidden), residual: s.f32(residual), norm: s.f32(normW) };
      const blocks = headGreedyBlocks(vocab, device.info.multiprocessors);
      const [partial, arrival] = [s.alloc(2 * blocks * batch * 4), s.i32(new Int32Array(1))];
      const run = (weight: DevicePtr) => {
        const [out, nextIds] = [s.alloc(batch * 4), s.alloc(batch * 4)];
        headGreedy(kernels, {
          ...bufs,
          eps: 1e-5,
          weight,
          partial,
          arrival,
          out,
          nextIds,
          batch,
          dModel: dim,
          vocab,
          blocks,
          programmatic: false,
        });
        return { out: s.readI32(out, batch), next: s.readI32(nextIds, batch), arrival: s.readI32(arrival, 1)[0] };
      };
      const ref = logitsOf(w);
      const got = run(s.act(w));
      const scale = Math.max(...ref.map((r) => Math.max(...Array.from(r, Math.abs))));
      const gap = Math.max(...ref.map((r, b) => r[argmaxOf(r)]! - r[got.out[b]!]!)) / scale;
      report.check(section, "head_greedy picks each row's best logit", gap <= (s.actBytes === 2 ? 5e-3 : 1e-5), {
        worstGapOfLargest: gap,
        sameAsReference: ref.filter((r, b) => argmaxOf(r) === got.out[b]).length,
        of: batch,
      });
      report.check(
        section,
        'head_greedy next ids = its tokens, arrival back at 0',
        got.next.every((v, i) => v === got.out[i]) && got.arrival === 0,
        { arrival: got.arrival },
      );
      const win = got.out[0]!;
      const [low, high] = [win > 3 ? 3 : win + 1, vocab - 1];
      const tied = w.slice();
      for (const row of [low, high]) tied.copyWithin(row * dim, win * dim, (win + 1) * dim);
      const again = run(s.act(tied));
      const want = Math.min(low, win);
      report.check(
        section,
        'head_greedy: an exact tie goes to the lower id',
        again.out[0] === want && again.arrival === 0,
        {
          got: again.out[0],
          want,
        },
      );
    });

    // ssm_step_dt one sequence a thread, two (three tiles, the last partial) and four (two tiles, the second
    // partial); a dt_proj rank past the weights a lane loads ahead (STEP_DT_PREFETCH 48, as 1.4b's 128)
    for (const [seqs, batch, dtRank] of [
      [1, 3, 6],
      [2, 5, 6],
      [SSM_STEP_SEQS, 6, 6],
      [SSM_STEP_SEQS, 5, 70],
    ] as const)
      await g(`conv_step + ssm_step_dt (${seqs} a thread, dt rank ${dtRank})`, () => {
        const dInner = 200,
          dbl = dtRank + 2 * D_STATE;
        const xz = s.quantize(randomArray(batch * 2 * dInner, rng, -2, 2));
        const xDbl = s.quantize(randomArray(batch * dbl, rng));
        const convState = randomArray(batch * dInner * D_CONV, rng, -2, 2);
        const ssmState = randomArray(batch * dInner * D_STATE, rng);
        const w = randomArray(dInner * D_CONV, rng, -0.5, 0.5),
          b = randomArray(dInner, rng);
        // dt_proj [dInner, dtRank] as the act type holds it, its bias, and the Δ they give (formed in f64 here)
        const wdt = s.quantize(randomArray(dInner * dtRank, rng, -0.5, 0.5));
        const dtBias = randomArray(dInner, rng, -3, -1);
        const delta = new Float32Array(batch * dInner);
        for (let bi = 0; bi < batch; bi++)
          for (let c = 0; c < dInner; c++) {
            let dt = dtBias[c]!;
            for (let r = 0; r < dtRank; r++) dt += wdt[c * dtRank + r]! * xDbl[bi * dbl + r]!;
            delta[bi * dInner + c] = softplus(dt);
          }
        const wdtT = new Float32Array(dtRank * dInner);
        for (let c = 0; c < dInner; c++) for (let r = 0; r < dtRank; r++) wdtT[r * dInner + c] = wdt[c * dtRank + r]!;
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
        ops.ssmStepDt(kernels, {
          x: xOut,
          xDbl: { ptr: xDblP, ld: dbl },
          z: { ptr: xzP + dInner * ab, ld: 2 * dInner },
          dtProjT: s.act(wdtT),
          dtBias: s.f32(dtBias),
          aLog2: s.f32(aLog2(aLog)),
          dSkip: s.f32(dSkip),
          state: { ptr: ssmP, seqStride: dInner * D_STATE },
          y,
          batch,
          dInner,
          dState: D_STATE,
          dtRank,
          seqs,
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
          const xq = xConv.subarray(bi * dInner, (bi + 1) * dInner); // what the device fed ssm_step_dt
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
        expectClose(`ssm_step_dt y (${seqs} a thread, dt rank ${dtRank})`, s.readAct(y, batch * dInner), refY);
        expectClose(
          `ssm_step_dt state (${seqs} a thread, dt rank ${dtRank})`,
          s.readF32(ssmP, ssmState.length),
          refSsm,
          1e-5,
        );
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
