// The one-call GPU check of the CUDA engine (bundled by shared/device/pack.sh, run on the H200; README.md beside this
// has the exact command). In order, within a time budget: environment and measured ceilings; NVRTC compile of both
// kernel builds (registers, spills); every kernel against the TypeScript reference ops; whole-model parity (PyTorch
// golden fixtures, the TS reference on a random mamba-130m shape, self-consistency at long L, bf16 vs fp32 on the
// passkey set); benchmarks for the 130m and 1.4b shapes. Writes JSON + markdown to $OUT and prints a short table last.
// Also writes the benchmark checkpoints (bf16 safetensors) for bench/cuda-compare.py, which runs right after it.
import { join, resolve } from 'node:path';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { CudaDevice } from './device.ts';
import { scriptArgs } from '../script-args.ts';
import { CudaEngine } from './engine.ts';
import { describeEnvironment, measureCeilings } from './device-check/environment.ts';
import { runKernelChecks } from './device-check/kernel-checks.ts';
import { goldenParity, passkeyAgreement } from './device-check/parity-golden.ts';
import { referenceParity, selfConsistency } from './device-check/parity-reference.ts';
import { benchConfig, benchWeights, writeBenchCheckpoint, SHAPES, type ShapeName } from './device-check/bench-model.ts';
import {
  benchBatch,
  benchBreakdown,
  benchDecode,
  checkFusedStep,
  checkGreedyHead,
  benchDecodeBreakdown,
  benchPrefill,
  probeDecode,
  probePrefill,
} from './device-check/bench.ts';
import { scanCompare, scanSummary } from './device-check/scan-compare.ts';
import { Deadline, fmt, Report } from './device-check/report.ts';
import { H200 } from './roofline.ts';
import type { KernelSet } from './device.ts';
import type { ScanKind } from './mixer.ts';

const args = scriptArgs(
  'node .device/app/device-check.mjs [options]   (packed by shared/device/pack.sh; mamba/cuda/README.md has the full ' +
    'command)\nThe one-call GPU check of the CUDA engine: environment, NVRTC compile, kernels against the reference, ' +
    'whole-model parity, benchmarks. Writes JSON + markdown to --out.',
  {
    out: { type: 'string', default: process.env.OUT ?? '.device-out' },
    phases: { type: 'string', default: 'env,compile,kernels,parity,bench' },
    shapes: { type: 'string', default: '130m,1.4b' },
    lengths: { type: 'string', default: '2048,8192,32768,65536,131072' },
    'batch-lengths': { type: 'string', default: '1024,2048,4096,8192,16384,32768,3072,6144' },
    'consistency-length': { type: 'string', default: '8192' },
    /** Phase `scan` (the scan variants against split): bf16 lengths; fp32 (130m only) runs those ≤ 32K. */
    'scan-lengths': { type: 'string', default: '32768,131072' },
    /** Phase `scan`: 'bf16' leaves out the fp32 rows (each variant is one NVRTC build per precision). */
    'scan-precisions': { type: 'string', default: 'bf16,fp32' },
    /** Phase `scan`: the variants to run beside split (comma-separated names, scan-compare.ts); all when left out. */
    'scan-variants': { type: 'string' },
    /** Phases bench/decode: the batches decode is timed at, in this order (the time budget skips the last). */
    'decode-batches': { type: 'string', default: '1,2,4,8,16,32,64' },
    'budget-s': { type: 'string', default: '360' },
    /** Phases parity/bench: the engines' prefill scan (split-staged | split-softplus | split | fused | fused-t2; default memory-plan.ts DEFAULT_SCAN) and whether prefill runs as graphs. */
    scan: { type: 'string' },
    'prefill-graphs': { type: 'boolean', default: false },
    /** Skip golden cases and passkey prompts longer than this (CPU-emulator smoke runs). */
    'max-parity-length': { type: 'string', default: '1000000' },
    'bench-dir': { type: 'string', default: '/tmp/deciserve-bench' },
    root: { type: 'string', default: process.cwd() },
    /** Name of this run's report files in --out (several runs, one per phase group, keep a GPU fault from sinking the rest). */
    'report-name': { type: 'string', default: 'cuda-device-check' },
    /** Merge the named reports (comma-separated report names in --out) into cuda-device-check.{json,md} and cuda-bench.json; no GPU. */
    merge: { type: 'string' },
  },
);

const phases = new Set(args.phases!.split(','));
const root = resolve(args.root!);
const report = new Report();
const deadline = new Deadline(Number(args['budget-s']));
const lengths = args.lengths!.split(',').map(Number);
const decodeBatches = args['decode-batches']!.split(',').map(Number);
if (decodeBatches.some((b) => !Number.isInteger(b) || b < 1)) {
  console.error(`--decode-batches takes positive integers, got ${args['decode-batches']}`);
  process.exit(2);
}

async function main(): Promise<void> {
  report.info[`args:${args['report-name']}`] = args;
  const device = CudaDevice.open({ cacheDir: '/tmp/deciserve-nvrtc-cache' }); // not under $OUT: only 8 files come back
  let ceilings = { bandwidth: H200.bandwidth, bf16Flops: H200.matmulFlops }; // until this run measures its own
  const kernels: Record<'f32' | 'bf16', KernelSet | null> = { f32: null, bf16: null };
  try {
    if (phases.has('env')) describeEnvironment(device, report);

    for (const build of ['f32', 'bf16'] as const) {
      await report.guard('compile', `NVRTC ${build}`, () => {
        const t0 = performance.now();
        const set = device.kernels({ actBf16: build === 'bf16', dState: 16, dConv: 4 });
        kernels[build] = set;
        const stats = set.stats();
        const spilling = Object.entries(stats).filter(([, s]) => s.localBytes > 0);
        for (const [name, s] of Object.entries(stats))
          report.row('kernel-resources', { build, kernel: name, registers: s.registers, localBytes: s.localBytes });
        report.check(
          'compile',
          `NVRTC ${build} (${set.compiled.kind}, ${set.compiled.options.join(' ')})`,
          spilling.length === 0,
          {
            ms: performance.now() - t0,
            compileMs: set.compiled.compileMs,
            cache: set.compiled.fromCache ?? 'miss',
            kernels: Object.keys(stats).length,
            spilling: spilling.map(([n]) => n).join(',') || 'none',
          },
        );
      });
    }

    const emulated = device.info.name.includes('emulator'); // the CPU emulator (tests): nothing to measure
    if (phases.has('env') && kernels.bf16 && !emulated)
      await report.guard('env', 'ceilings', () => void (ceilings = measureCeilings(device, kernels.bf16!, report)));

    if (phases.has('kernels')) {
      for (const build of ['f32', 'bf16'] as const) {
        if (kernels[build]) await runKernelChecks(device, kernels[build]!, report, build === 'f32' ? 1 : 2);
      }
    }

    if (phases.has('parity')) {
      const maxLength = Number(args['max-parity-length']);
      await goldenParity(device, report, root, maxLength);
      if (deadline.has(60))
        await report.guard('passkey-bf16', 'passkey agreement', () =>
          passkeyAgreement(device, report, root, deadline, maxLength),
        );
      else report.skip('passkey agreement: time budget');
    }

    if (phases.has('scan')) {
      // both paths on the golden fixtures, so a case that fails on both (a fixture's near-tie in bf16) reads as such
      const kinds = [
        { scan: 'split' },
        { scan: 'split-softplus' },
        { scan: 'split-staged' },
        { scan: 'fused' },
        { scan: 'fused-t2' },
        { scan: 'split', scanFmaExp: 6 },
      ] as const;
      for (const options of kinds) await goldenParity(device, report, root, Number(args['max-parity-length']), options);
      const scanLengths = args['scan-lengths']!.split(',').map(Number);
      for (const shape of args.shapes!.split(',').filter(Boolean) as ShapeName[]) {
        if (!(shape in SHAPES) || !deadline.has(30)) {
          report.skip(`scan ${shape}: ${shape in SHAPES ? 'time budget' : 'unknown shape'}`);
          continue;
        }
        const config = benchConfig(shape);
        const weights = await benchWeights(config, shape === '130m' ? 130 : 1400);
        const scanFp32 = args['scan-precisions']!.split(',').includes('fp32');
        const fp32 = shape === '1.4b' || !scanFp32 ? [] : scanLengths.filter((L) => L <= 32768);
        // one engine a variant on one GPU: at 1.4b and 128K the seventh DeciMamba pass (whole prompt, 8.7 GiB) did not
        // fit beside the other six engines' arenas on an 80 GB H100 (cuda-scan-waves-h100.json)
        const bf16 = shape === '1.4b' ? scanLengths.filter((L) => L <= 65536) : scanLengths;
        for (const L of scanLengths.filter((L) => !bf16.includes(L)))
          report.skip(`scan ${shape} bf16 L=${L}: one engine a variant does not fit at this length`);
        await scanCompare(
          {
            shape,
            config,
            weights,
            device,
            precisions: fp32.length ? ['bf16', 'fp32'] : ['bf16'],
            lengths: { bf16, fp32 },
            variants: args['scan-variants']?.split(',').filter(Boolean),
          },
          report,
          deadline,
        );
      }
    }

    const shapes =
      phases.has('bench') ||
      phases.has('parity') ||
      phases.has('decode') ||
      phases.has('decode-probe') ||
      phases.has('prefill-probe')
        ? (args.shapes!.split(',').filter(Boolean) as ShapeName[])
        : [];
    for (const shape of shapes) {
      if (!(shape in SHAPES)) {
        report.check('bench', `shape ${shape}`, false, {}, `unknown shape (known: ${Object.keys(SHAPES).join(', ')})`);
        continue;
      }
      if (!deadline.has(30)) {
        report.skip(`shape ${shape}: time budget`);
        continue;
      }
      const config = benchConfig(shape);
      let t0 = performance.now();
      const weights = await benchWeights(config, shape === '130m' ? 130 : 1400);
      report.row('setup', { shape, what: 'random weights (host, bf16-exact)', ms: performance.now() - t0 });
      if (phases.has('bench')) {
        await report.guard('setup', `write ${shape} checkpoint`, () => {
          t0 = performance.now();
          writeBenchCheckpoint(join(args['bench-dir']!, shape), config, weights);
          report.row('setup', {
            shape,
            what: `checkpoint for bench/cuda-compare.py in ${args['bench-dir']}/${shape}`,
            ms: performance.now() - t0,
          });
        });
      }
      t0 = performance.now();
      const engineOptions = { scan: args.scan as ScanKind | undefined, prefillGraphs: args['prefill-graphs'] };
      const bf16 = CudaEngine.create(config, weights, { device, precision: 'bf16', ...engineOptions });
      report.row('setup', {
        shape,
        what: 'upload bf16 engine',
        ms: performance.now() - t0,
        deviceGiB: bf16.deviceBytes / 2 ** 30,
      });
      const fp32 =
        shape !== '1.4b' ? CudaEngine.create(config, weights, { device, precision: 'fp32', ...engineOptions }) : null; // fp32 GEMMs of 1.4b at 128K are minutes
      try {
        if (phases.has('parity') && fp32) {
          const target = { engines: { fp32, bf16 }, config, weights, report, deadline, label: shape };
          await referenceParity(target);
          await selfConsistency(target, Number(args['consistency-length']), { device });
        }
        if (phases.has('bench')) {
          const target = { shape, config, engine: bf16 };
          await benchPrefill(target, report, deadline, lengths, ceilings);
          await benchBatch(target, report, deadline, args['batch-lengths']!.split(',').map(Number));
          await checkFusedStep(target, report);
          await checkGreedyHead(target, report);
          await benchDecode(target, report, deadline, decodeBatches);
          await benchDecodeBreakdown(target, report, deadline);
          await benchBreakdown(target, report, deadline, Math.min(32768, Math.max(...lengths)));
        } else if (phases.has('decode-probe') || phases.has('prefill-probe')) {
          const target = { shape, config, engine: bf16 };
          if (phases.has('decode-probe')) await probeDecode(target, report);
          if (phases.has('prefill-probe')) await probePrefill(target, report, lengths);
        } else if (phases.has('decode')) {
          const target = { shape, config, engine: bf16 };
          await checkFusedStep(target, report);
          await checkGreedyHead(target, report);
          await benchDecode(target, report, deadline, decodeBatches);
          await benchDecodeBreakdown(target, report, deadline);
        }
        if (phases.has('bench')) {
          if (fp32)
            await benchPrefill(
              { shape, config, engine: fp32 },
              report,
              deadline,
              lengths.filter((L) => L <= 32768),
              ceilings,
            );
        }
      } finally {
        await bf16.dispose();
        await fp32?.dispose();
      }
    }
  } finally {
    try {
      device.dispose();
    } catch (err) {
      report.check('teardown', 'device.dispose', false, {}, (err as Error).message);
    }
  }
}

function summary(): string {
  const lines: string[] = [];
  const failed = report.failures;
  const partsS = Object.entries(report.info)
    .filter(([k]) => k.startsWith('elapsedS:'))
    .reduce((a, [, v]) => a + (v as number), 0);
  lines.push(
    `== CUDA device check: ${report.checks.length - failed.length}/${report.checks.length} checks passed, ${report.skipped.length} skipped, ${(partsS || report.elapsedS()).toFixed(0)} s`,
  );
  for (const f of failed.slice(0, 15))
    lines.push(`FAIL [${f.section}] ${f.name} ${JSON.stringify(f.values)} ${f.error ?? ''}`.slice(0, 400));
  const c = report.info.ceilings as { copyGBs: number; bf16GemmTflops: number } | undefined;
  if (c) lines.push(`ceilings: copy ${c.copyGBs.toFixed(0)} GB/s, bf16 GEMM ${c.bf16GemmTflops.toFixed(0)} TFLOP/s`);
  lines.push('shape  engine     L       mode       ms        tok/s       %floor  vsPlain');
  for (const r of report.tables.prefill ?? []) {
    lines.push(
      `${String(r.shape).padEnd(6)} ${String(r.engine).padEnd(10)} ${String(r.L).padEnd(7)} ${String(r.mode).padEnd(10)} ${fmt(r.ms as number).padStart(9)} ${String(r.tokensPerS).padStart(11)} ${fmt(r.pctOfFloor as number).padStart(7)}  ${typeof r.vsPlain === 'number' ? fmt(r.vsPlain) : ''}`,
    );
  }
  for (const r of report.tables.batch ?? [])
    lines.push(
      `batch ${r.shape} ${r.engine} ${r.mode}: ${fmt(r.batchMs as number)} ms vs singles ${fmt(r.sumOfSinglesMs as number)} ms → ×${fmt(r.batchVsSingles as number)} (${r.passes} passes)`,
    );
  for (const r of report.tables.decode ?? [])
    lines.push(
      `decode ${r.shape} ${r.engine} batch ${r.batch} graph=${r.graph} fused=${r.fused} mma=${r.mma} pdl=${r.programmatic} prefetch=${r.l2Prefetch}${r.headPrefetchBytes ? `+head ${r.headPrefetchBytes}` : ''} persistent=${r.persistent} greedyHead=${r.greedyHead} ssmSeqs=${r.ssmSeqs}${r.mmaSeqSpan ? ` span=${r.mmaSeqSpan}` : ''}${r.mmaGemms ? ' mmaGemms' : ''}: ${r.tokensPerS} tok/s (${fmt(r.msPerStep as number)} ms/step, GPU ${r.gpuMsPerStep === '' ? '-' : fmt(r.gpuMsPerStep as number)} ms/step; greedy ${r.greedyTokensPerS || '-'} tok/s)`,
    );
  for (const r of report.tables.decodeBreakdown ?? [])
    if ((r.pct as number) >= 8 || r.kernel === 'TOTAL (events)')
      lines.push(
        `decode-breakdown ${r.shape} b${r.batch} fused=${r.fused} mma=${r.mma}${r.mmaGemms ? '+gemms' : ''} prefetch=${r.l2Prefetch} ${r.kernel}: ${fmt(r.usPerStep as number)} us/step (${fmt(r.pct as number)}%)`,
      );
  const groups = new Map<string, Record<string, unknown>[]>();
  for (const r of report.tables.breakdown ?? []) {
    const key = `${r.shape} ${r.engine} L=${r.L} ${r.mode}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  for (const [key, rows] of groups) {
    const top = rows.filter((r) => !String(r.kernel).startsWith('TOTAL')).slice(0, 7);
    const total = rows.find((r) => String(r.kernel).startsWith('TOTAL'));
    lines.push(
      `breakdown ${key} (${fmt(total?.ms as number)} ms GPU): ${top.map((r) => `${r.kernel} ${(r.pct as number).toFixed(1)}%`).join(', ')}`,
    );
  }
  lines.push(...scanSummary(report));
  // the issue's targets, where this run measured them
  const prefill = report.tables.prefill ?? [];
  const at = (shape: string, engine: string, L: number, mode: string) =>
    prefill.find((r) => r.shape === shape && r.engine === engine && r.L === L && r.mode === mode);
  const p32 = at('130m', 'cuda-bf16', 32768, 'mamba');
  const d32 = at('130m', 'cuda-bf16', 32768, 'decimamba');
  if (p32) lines.push(`target: 130m bf16 32K at ${fmt(p32.pctOfFloor as number)}% of the roofline floor (≥50% wanted)`);
  if (p32 && d32)
    lines.push(`target: DeciMamba/plain at 32K = ${fmt((d32.ms as number) / (p32.ms as number))} (≤0.6 wanted)`);
  for (const b of report.tables.batch ?? [])
    lines.push(
      `target: batch/singles per-token throughput ${b.shape} ${b.mode} = ${fmt(b.batchVsSingles as number)} (≥0.8 wanted)`,
    );
  return lines.join('\n');
}

function merge(parts: string[]): void {
  const commands: string[] = [];
  for (const part of parts) {
    const file = join(args.out!, `${part}.json`);
    if (!existsSync(file)) {
      report.check(
        'device-check',
        `report ${part}`,
        false,
        {},
        `${file} is missing (that run died before writing it; see device-check.log)`,
      );
      continue;
    }
    const r = JSON.parse(readFileSync(file, 'utf8')) as Pick<
      Report,
      'info' | 'checks' | 'tables' | 'notes' | 'skipped' | 'command'
    > & { elapsedS: number };
    commands.push(r.command);
    report.info[`elapsedS:${part}`] = r.elapsedS;
    Object.assign(report.info, r.info);
    report.checks.push(...r.checks);
    for (const [t, rows] of Object.entries(r.tables)) (report.tables[t] ??= []).push(...rows);
    report.notes.push(...r.notes);
    report.skipped.push(...r.skipped);
    for (const ext of ['json', 'md']) rmSync(join(args.out!, `${part}.${ext}`), { force: true });
  }
  report.command = [...commands, report.command].join(' && ');
  report.write(args.out, 'cuda-device-check');
  writeFileSync(
    join(args.out!, 'cuda-bench.json'),
    JSON.stringify({ command: report.command, tables: report.tables, info: report.info }, null, 1),
  );
}

if (args.merge) {
  mkdirSync(args.out!, { recursive: true });
  merge(args.merge.split(',').filter(Boolean));
  console.log(summary());
  process.exitCode = report.failures.length > 0 ? 1 : 0;
} else {
  // `timeout` sends SIGTERM: keep what was measured so far
  process.once('SIGTERM', () => {
    report.check(
      'device-check',
      'run',
      false,
      {},
      'stopped by SIGTERM (the outer timeout); the results so far are kept',
    );
    report.write(args.out, args['report-name']);
    console.log(summary());
    process.exit(2);
  });
  main()
    .catch((err: unknown) => {
      report.check('device-check', 'run', false, {}, (err as Error).stack ?? String(err));
    })
    .finally(() => {
      try {
        report.write(args.out, args['report-name']);
      } catch (err) {
        console.error(`could not write the report: ${(err as Error).message}`);
      }
      console.log(summary());
      process.exitCode = report.failures.length > 0 ? 1 : 0;
    });
}
