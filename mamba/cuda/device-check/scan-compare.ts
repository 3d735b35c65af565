// Phase `scan` of the device check: the selective scan's variants against the default split path (scan.cu) on the
// same random bf16-exact weights, per shape, precision, length and mode (plain / DeciMamba): prefill wall time
// (warm-up, then the median of several runs, the variants interleaved), the per-kernel GPU time from CUDA events, and
// parity against split (kept indices identical; logits and states within the precision's tolerance). The variants:
// split-softplus alone, with the power-of-two chunk length (no wave fitting, batch-plan.ts
// chooseScanChunk), and with 6 of each step's 16 decays on the FMA pipe (scanFmaExp; 4, 6 and 8 on
// split were 1–5% slower on the H100, cuda-scan-fma-h100.json), the fused scan (scan-fused.cu) with one and two
// warps a channel, split-staged (scan-staged.cu: passes 1 and 3 fed through shared memory by asynchronous copies;
// 8 rows a stage × 3 stages, and 16 × 2, 4 × 4, 8 × 2; and with 2 or 4 decays a step on the FMA pipe, which may pay
// once the passes no longer wait on loads; with out_proj adding into the residual stream, residualInOutProj; and with
// pass 2 a warp a segment of the chunks, scanCarry 'segmented'),
// and fused with prefill CUDA graphs (prefill-graphs.ts: wall time only, what host launches cost).
// Every variant runs pass 2 as it did when it was measured, one thread a state walking every chunk (scanCarry
// 'serial'), unless it names another; bf16's default since cuda-scan-staged-h100.json is split-staged + segmented.
// The golden fixtures run on every scan kind first (device-check.ts, goldenParity with engine options).
import type { MambaConfig, MambaWeights, PrefillOptions } from '../../engine.ts';
import { planBatch } from '../batch-plan.ts';
import type { CudaDevice } from '../device.ts';
import { CudaEngine, type CudaEngineOptions } from '../engine.ts';
import { SPLIT_SCAN_LAUNCHES } from '../kernels/manifest.ts';
import type { KernelTime } from '../profiler.ts';
import { prefillRoofline } from '../roofline.ts';
import { paperDecimation } from './bench.ts';
import { BF16_KEPT_OVERLAP, keptOverlap } from './parity-metrics.ts';
import { fmt, type Deadline, type Report } from './report.ts';

/** A variant's engine options; `profiledAs` names the eager variant whose kernel times stand for a graphed one. */
interface Variant {
  name: string;
  options: CudaEngineOptions;
  profiledAs?: string;
}
const VARIANTS: Variant[] = [
  { name: 'split', options: { scan: 'split' } },
  { name: 'split-softplus', options: { scan: 'split-softplus' } },
  { name: 'split-sp-pow2', options: { scan: 'split-softplus', fitScanWaves: false } },
  { name: 'split-sp-fma6', options: { scan: 'split-softplus', scanFmaExp: 6 } },
  { name: 'split-staged', options: { scan: 'split-staged' } },
  { name: 'staged-16x2', options: { scan: 'split-staged', scanStage: { steps: 16, stages: 2 } } },
  { name: 'staged-4x4', options: { scan: 'split-staged', scanStage: { steps: 4, stages: 4 } } },
  { name: 'staged-8x2', options: { scan: 'split-staged', scanStage: { steps: 8, stages: 2 } } },
  { name: 'staged-fma2', options: { scan: 'split-staged', scanFmaExp: 2 } },
  { name: 'staged-fma4', options: { scan: 'split-staged', scanFmaExp: 4 } },
  { name: 'staged+resid', options: { scan: 'split-staged', residualInOutProj: true } },
  { name: 'staged+segcarry', options: { scan: 'split-staged', scanCarry: 'segmented' } },
  {
    name: 'staged16x2+segcarry',
    options: { scan: 'split-staged', scanStage: { steps: 16, stages: 2 }, scanCarry: 'segmented' },
  },
  { name: 'fused', options: { scan: 'fused' } },
  { name: 'fused-t2', options: { scan: 'fused-t2' } },
  { name: 'fused+graphs', options: { scan: 'fused', prefillGraphs: true }, profiledAs: 'fused' },
];

/** fused vs split, fp32: the same arithmetic up to summation order, so they agree far below the golden gate. */
const FP32_TOL = 1e-3;
/** bf16: both paths round y to bf16, so one flip moves later layers; held to 1% of the largest logit. */
const BF16_REL_TOL = 0.01;
const PROTECT = 16;

function randomIds(n: number, vocab: number, seed: number): number[] {
  let x = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % vocab;
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Number.isNaN(a[i]! - b[i]!) ? Infinity : Math.abs(a[i]! - b[i]!));
  return m;
}

async function profiled(
  engine: CudaEngine,
  device: CudaDevice,
  ids: number[],
  options: PrefillOptions,
): Promise<KernelTime[]> {
  device.enableProfiler(true);
  try {
    device.profiler!.begin();
    await engine.prefill(ids, options);
    return device.profiler!.collect();
  } finally {
    device.enableProfiler(false);
  }
}

export interface ScanCompareTarget {
  shape: string;
  config: MambaConfig;
  weights: MambaWeights;
  device: CudaDevice;
  precisions: ('fp32' | 'bf16')[];
  /** Lengths per precision (fp32 GEMMs at 128K take long: the caller may give it fewer). */
  lengths: Record<'fp32' | 'bf16', number[]>;
  /** The variants to run (by name; split, the reference, always runs); all when left out. */
  variants?: string[];
}

function chosenVariants(names: string[] | undefined): Variant[] {
  if (!names) return VARIANTS;
  const unknown = names.filter((n) => !VARIANTS.some((v) => v.name === n));
  if (unknown.length) throw new Error(`unknown scan variants: ${unknown.join(', ')}`);
  return VARIANTS.filter((v) => v.name === 'split' || names.includes(v.name));
}

export async function scanCompare(t: ScanCompareTarget, report: Report, deadline: Deadline): Promise<void> {
  const { config, device } = t;
  const variants = chosenVariants(t.variants);
  for (const precision of t.precisions) {
    const engines = new Map<string, CudaEngine>();
    for (const v of variants)
      engines.set(
        v.name,
        CudaEngine.create(config, t.weights, { device, precision, scanCarry: 'serial', ...v.options }),
      );
    try {
      for (const L of t.lengths[precision]) {
        for (const mode of ['mamba', 'decimamba'] as const) {
          const name = `${t.shape} ${precision} L=${L} ${mode}`;
          const plan = planBatch([{ length: L, protect: PROTECT, decimation: null }], config.nLayer);
          const floorMs = prefillRoofline({ config, precision, plan, logitRows: 1 }).floorMs;
          if (!deadline.has((floorMs / 1e3) * 40 + 15)) {
            report.skip(`scan ${name}: time budget`);
            continue;
          }
          await report.guard('scan', name, () => compareOne(engines, variants, t, report, precision, L, mode, floorMs));
        }
      }
    } finally {
      for (const e of engines.values()) await e.dispose();
    }
  }
}

async function compareOne(
  engines: Map<string, CudaEngine>,
  variants: Variant[],
  t: ScanCompareTarget,
  report: Report,
  precision: 'fp32' | 'bf16',
  L: number,
  mode: 'mamba' | 'decimamba',
  floorMs: number,
): Promise<void> {
  const { config, device } = t;
  const decimation = mode === 'decimamba' ? paperDecimation(config) : null;
  const ids = randomIds(L, config.vocabSize, L + 17);
  const options: PrefillOptions = { decimation, protect: PROTECT, logitPositions: [L - 1] };
  // parity first (also the warm-up: arena growth, cuBLAS heuristics)
  const engine = (name: string) => engines.get(name)!;
  const split = await engine('split').prefill(ids, options);
  const keptOf = (r: typeof split) => JSON.stringify(r.kept.map((k) => [k.layer, Array.from(k.indices)]));
  const largest = Math.max(...Array.from(split.logits[0]!, Math.abs));
  for (const { name: v } of variants.slice(1)) {
    const got = await engine(v).prefill(ids, options);
    const dLogit = maxAbs(got.logits[0]!, split.logits[0]!);
    let dState = 0;
    for (const [i, s] of split.state.entries())
      dState = Math.max(dState, maxAbs(got.state[i]!.ssm, s.ssm), maxAbs(got.state[i]!.conv, s.conv));
    const kept = keptOf(got) === keptOf(split);
    // bf16: the kept sets may differ only at near-ties of the K-th score, as in every other bf16 check here
    const overlap = keptOverlap(got.kept, split.kept);
    const ok =
      precision === 'fp32'
        ? kept && dLogit <= FP32_TOL && dState <= FP32_TOL
        : overlap >= BF16_KEPT_OVERLAP && dLogit <= BF16_REL_TOL * largest;
    report.check('scan-parity', `${v} vs split ${t.shape} ${precision} L=${L} ${mode}`, ok, {
      maxDLogit: dLogit,
      relToMax: dLogit / largest,
      maxDState: dState,
      kept,
      keptOverlap: overlap,
      tol: precision === 'fp32' ? FP32_TOL : `${BF16_REL_TOL}·max|logit|`,
    });
  }

  // wall time: the variants interleaved, median of reps (fused+graphs: captured in the first rep, replayed after)
  const reps = L <= 32768 ? 5 : 3;
  const times = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let r = 0; r < reps; r++) {
    for (const { name } of variants) {
      const t0 = performance.now();
      await engine(name).prefill(ids, options);
      times.get(name)!.push(performance.now() - t0);
    }
  }
  const kernels = new Map<string, KernelTime[]>();
  for (const { name } of variants.filter((v) => !v.profiledAs))
    kernels.set(name, await profiled(engine(name), device, ids, options));
  const sum = (ks: KernelTime[]) => ks.reduce((a, k) => a + k.ms, 0);
  const gpu = (name: string) => sum(kernels.get(name)!);
  const scanMs = (name: string) => sum(kernels.get(name)!.filter((k) => SCAN_LABELS.has(k.label)));
  const launches = (name: string) => kernels.get(name)!.reduce((a, k) => a + k.calls, 0);
  const wall = (name: string) => median(times.get(name)!);
  for (const { name: scan, profiledAs } of variants) {
    const eager = profiledAs ?? scan;
    const graphs = engine(scan).prefillGraphs;
    report.row('scan', {
      shape: t.shape,
      precision,
      L,
      mode,
      scan,
      ms: wall(scan),
      tokensPerS: Math.round(L / (wall(scan) / 1e3)),
      pctOfFloor: (100 * floorMs) / wall(scan),
      gpuMs: gpu(eager),
      scanKernelsMs: scanMs(eager),
      launches: graphs ? 'graph' : launches(scan),
      // cumulative over this engine's rows; lastError set means a capture failed and that pass ran eagerly
      graphs: graphs
        ? `${graphs.captures} captured, ${graphs.replays} replayed` +
          (graphs.lastError ? `, error: ${graphs.lastError}` : '')
        : '',
      reps,
      vsSplit: scan === 'split' ? '' : wall(scan) / wall('split'),
    });
  }
  // per kernel, side by side (labels present in either path)
  const labels = [...new Set([...kernels.values()].flatMap((ks) => ks.map((k) => k.label)))];
  for (const label of labels) {
    const row: Record<string, unknown> = { shape: t.shape, precision, L, mode, kernel: label };
    for (const [scan, ks] of kernels) {
      const k = ks.find((x) => x.label === label);
      row[`${scan}Ms`] = k?.ms ?? 0;
      row[`${scan}Calls`] = k?.calls ?? 0;
    }
    report.row('scan-kernels', row);
  }
}

/** The scan's kernels on either path (scores and selection run in both paths, so they are not counted). */
const SCAN_LABELS = new Set<string>([...SPLIT_SCAN_LAUNCHES, 'scan_fused', 'scan_fused_t2']);

/** The printed table (the device tool returns only the end of the output). */
export function scanSummary(report: Report): string[] {
  const rows = report.tables.scan ?? [];
  if (rows.length === 0) return [];
  const lines = [
    'scan         shape  prec L       mode       wall ms   GPU ms  scan-kernel ms  launches  %floor  vs split',
  ];
  for (const r of rows) {
    lines.push(
      [
        String(r.scan).padEnd(12),
        String(r.shape).padEnd(6),
        String(r.precision).padEnd(4),
        String(r.L).padEnd(7),
        String(r.mode).padEnd(10),
        fmt(r.ms as number).padStart(8),
        fmt(r.gpuMs as number).padStart(8),
        fmt(r.scanKernelsMs as number).padStart(15),
        String(r.launches).padStart(9),
        fmt(r.pctOfFloor as number).padStart(7),
        ` ${typeof r.vsSplit === 'number' ? fmt(r.vsSplit) : ''}`,
      ].join(' '),
    );
  }
  return lines;
}
