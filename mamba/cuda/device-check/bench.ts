// Prefill and decode benchmarks on random checkpoints of real shapes: latency and tokens/s at each length, plain
// Mamba against DeciMamba, a batch of 8 mixed lengths against the sum of its singles, decode tokens/s (graph vs eager),
// the roofline of each configuration, and a per-kernel breakdown from CUDA events.
import { type DecimationConfig, GREEDY_AHEAD, type MambaConfig } from '../../engine.ts';
import { planBatch } from '../batch-plan.ts';
import type { CudaEngine } from '../engine.ts';
import type { DecodeSessionOptions } from '../decode.ts';
import type { MmaStep } from '../mixer.ts';
import { SSM_STEP_SEQS } from '../kernels/manifest.ts';
import type { SsmStepSeqs } from '../ops.ts';
import type { KernelTime } from '../profiler.ts';
import { prefillRoofline, H200 } from '../roofline.ts';
import { largest, maxAbs } from './parity-metrics.ts';
import type { Deadline, Report } from './report.ts';

export interface BenchTarget {
  shape: string;
  config: MambaConfig;
  engine: CudaEngine;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export function paperDecimation(config: MambaConfig): DecimationConfig {
  return { layers: [Math.floor(config.nLayer / 2)], beta: 0.5, lBase: 2000, minSeqLen: 20 };
}

function randomIds(n: number, vocab: number, seed: number): number[] {
  let x = seed >>> 0 || 1;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % vocab;
  });
}

const PROTECT = 16;

/** Wall time of one prefillBatch (host tables, uploads, kernels, logits and states back). */
async function timePrefill(
  engine: CudaEngine,
  reqs: Parameters<CudaEngine['prefillBatch']>[0],
  reps: number,
): Promise<number> {
  await engine.prefillBatch(reqs); // warm-up: arena growth, cuBLAS heuristics
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await engine.prefillBatch(reqs);
    times.push(performance.now() - t0);
  }
  return median(times);
}

export async function benchPrefill(
  t: BenchTarget,
  report: Report,
  deadline: Deadline,
  lengths: number[],
  ceilings: { bandwidth: number; bf16Flops: number },
): Promise<void> {
  const { engine, config } = t;
  const deci = paperDecimation(config);
  const plainMs = new Map<number, number>();
  for (const L of lengths) {
    for (const mode of ['mamba', 'decimamba'] as const) {
      const estimateS =
        (prefillRoofline({
          config,
          precision: engine.core.precision,
          plan: planBatch([{ length: L, protect: PROTECT, decimation: null }], config.nLayer),
          logitRows: 1,
        }).designFloorMs /
          1e3) *
          8 +
        1;
      if (!deadline.has(estimateS + 20)) {
        report.skip(`prefill ${t.shape} ${engine.name} L=${L} ${mode}: time budget`);
        continue;
      }
      await report.guard('bench', `prefill ${t.shape} ${engine.name} L=${L} ${mode}`, async () => {
        const decimation = mode === 'decimamba' ? deci : null;
        const ids = randomIds(L, config.vocabSize, L);
        const reps = L <= 8192 ? 5 : L <= 32768 ? 3 : 2;
        const ms = await timePrefill(engine, [{ ids, options: { decimation, protect: PROTECT } }], reps);
        const plan = planBatch([{ length: L, protect: PROTECT, decimation }], config.nLayer);
        const roof = prefillRoofline({ config, precision: engine.core.precision, plan, logitRows: 1 });
        if (mode === 'mamba') plainMs.set(L, ms);
        const base = plainMs.get(L);
        report.row('prefill', {
          shape: t.shape,
          engine: engine.name,
          L,
          mode,
          ms,
          tokensPerS: Math.round(L / (ms / 1e3)),
          floorMs: roof.floorMs,
          pctOfFloor: (100 * roof.floorMs) / ms,
          designFloorMs: roof.designFloorMs,
          achievedTflops: roof.matmulFlops / (ms / 1e3) / 1e12,
          vsPlain: mode === 'decimamba' && base ? ms / base : '',
          passes: engine.lastPasses.length, // >1: the memory plan cut the prompt into segments carrying the state
          gemmTflop: roof.matmulFlops / 1e12,
          minGB: roof.minBytes / 1e9,
          designGB: roof.designBytes / 1e9,
        });
      });
    }
  }
  report.info.roofline = {
    matmulFlopsCeiling: H200.matmulFlops,
    bandwidthCeiling: H200.bandwidth,
    measured: { bf16GemmFlops: ceilings.bf16Flops, copyBandwidth: ceilings.bandwidth },
  };
}

export async function benchBatch(t: BenchTarget, report: Report, deadline: Deadline, lengths: number[]): Promise<void> {
  const { engine, config } = t;
  for (const mode of ['mamba', 'decimamba'] as const) {
    if (!deadline.has(40)) {
      report.skip(`batch ${t.shape} ${engine.name} ${mode}: time budget`);
      continue;
    }
    await report.guard('bench', `batch of ${lengths.length} ${t.shape} ${engine.name} ${mode}`, async () => {
      const decimation = mode === 'decimamba' ? paperDecimation(config) : null;
      const reqs = lengths.map((L, i) => ({
        ids: randomIds(L, config.vocabSize, 1000 + i),
        options: { decimation, protect: PROTECT },
      }));
      const batchMs = await timePrefill(engine, reqs, 3);
      const passes = engine.lastPasses.length;
      let singlesMs = 0;
      for (const r of reqs) singlesMs += await timePrefill(engine, [r], 3);
      const tokens = lengths.reduce((a, b) => a + b, 0);
      report.row('batch', {
        shape: t.shape,
        engine: engine.name,
        mode,
        lengths: lengths.join('+'),
        batchMs,
        sumOfSinglesMs: singlesMs,
        batchTokensPerS: Math.round(tokens / (batchMs / 1e3)),
        singlesTokensPerS: Math.round(tokens / (singlesMs / 1e3)),
        batchVsSingles: singlesMs / batchMs,
        passes,
      });
    });
  }
}

/** A decode session of `batch` empty states, 3 greedy warm-up steps taken (the graph captured if used); disposed after. */
async function withDecodeSession<T>(
  engine: CudaEngine,
  batch: number,
  opts: DecodeSessionOptions,
  run: (session: ReturnType<CudaEngine['openDecode']>, step: () => Promise<unknown>) => Promise<T>,
): Promise<T> {
  const states = Array.from({ length: batch }, () => engine.emptyState());
  const session = engine.openDecode(states, opts);
  try {
    let tokens = Array.from({ length: batch }, (_, i) => (i * 7919) % engine.core.config.vocabSize);
    const step = async () => (tokens = Array.from((await session.step(tokens, { argmax: true })).tokens!));
    for (let i = 0; i < 3; i++) await step();
    return await run(session, step);
  } finally {
    session.dispose();
  }
}

/**
 * The fused step (with and without programmatic launch), and the six launches with programmatic launch (ssm_step_dt
 * one sequence a thread and four), against the six launches without it (one a thread) on the GPU: 16 graph-replayed steps of the same tokens from empty states; the logits must
 * agree within the bf16 tolerance of the emulator tests (3% of the largest |logit|), so a race between overlapping
 * kernels cannot pass unseen.
 */
export async function checkFusedStep(t: BenchTarget, report: Report): Promise<void> {
  const { engine } = t;
  type Case = {
    batch: number;
    fusedStep: boolean;
    programmatic: boolean;
    ssmSeqs?: SsmStepSeqs;
    persistent?: boolean;
    l2Prefetch?: boolean;
    mma?: MmaStep;
    /** mmaSeqSpan: must give the unspread mma step's logits bit for bit */
    span?: number;
    mmaGemms?: boolean;
  };
  const cases: Case[] = [
    // x_proj and out_proj as step_gemm_mma: with the six launches, and with both forms of the mma step
    { batch: 64, fusedStep: false, programmatic: true, ssmSeqs: SSM_STEP_SEQS, l2Prefetch: true, mmaGemms: true },
    { batch: 8, fusedStep: false, programmatic: true, mma: 'partials', l2Prefetch: true, mmaGemms: true },
    { batch: 64, fusedStep: false, programmatic: true, mma: 'gemm', l2Prefetch: true, span: 16, mmaGemms: true },
    ...(
      [
        ['partials', 16],
        ['gemm', 32],
      ] as const
    ).map(([mma, span]) => ({
      batch: 64,
      fusedStep: false,
      programmatic: true,
      mma,
      l2Prefetch: true,
      span,
    })),
    ...[8, 19, 64].flatMap((batch) =>
      (['partials', 'gemm'] as const).map((mma) => ({
        batch,
        fusedStep: false,
        programmatic: true,
        mma,
        l2Prefetch: true,
      })),
    ),
    ...[1, 8].flatMap((batch) => [true, false].map((programmatic) => ({ batch, fusedStep: true, programmatic }))),
    ...[1, 3, 8].map((batch) => ({ batch, fusedStep: true, programmatic: true, persistent: true })),
    ...[1, 8].map((batch) => ({ batch, fusedStep: true, programmatic: true, l2Prefetch: true })),
    ...[1, 8].map((batch) => ({ batch, fusedStep: true, programmatic: true, persistent: true, l2Prefetch: true })),
    ...[3, 8, 64].flatMap((batch) =>
      ([1, SSM_STEP_SEQS] as const).map((ssmSeqs) => ({ batch, fusedStep: false, programmatic: true, ssmSeqs })),
    ),
    ...[8, 64].map((batch) => ({
      batch,
      fusedStep: false,
      programmatic: true,
      ssmSeqs: SSM_STEP_SEQS,
      l2Prefetch: true,
    })),
    { batch: 64, fusedStep: false, programmatic: true, ssmSeqs: 2, l2Prefetch: true },
  ];
  for (const c of cases) {
    const { batch, fusedStep, programmatic, ssmSeqs = 1, persistent = false, l2Prefetch = false, mma = null } = c;
    const { span, mmaGemms = false } = c;
    const form =
      (persistent
        ? 'persistent decode step'
        : fusedStep
          ? 'fused decode step'
          : mma
            ? `mma step (${mma})`
            : `six launches (ssm_step_dt ${ssmSeqs} a thread)`) +
      (span ? ` over spans of ${span}` : '') +
      (mmaGemms ? ' with mma GEMMs' : '') +
      (l2Prefetch ? ' with L2 prefetch' : '');
    const name = `${form} = the six launches ${t.shape} batch ${batch} pdl=${programmatic}`;
    await report.guard('decode', name, async () => {
      const states = Array.from({ length: batch }, () => engine.emptyState());
      // the six launches themselves, not the mma step a session takes by default at batches 3–16
      const plain = engine.openDecode(states, {
        fusedStep: false,
        mmaStep: false,
        programmatic: false,
        ssmSeqs: 1,
        l2Prefetch: false,
      });
      const opts: DecodeSessionOptions = {
        fusedStep,
        programmatic,
        ssmSeqs,
        l2Prefetch: false,
        mmaStep: mma ?? false,
        mmaGemms,
      };
      const other = engine.openDecode(states, { ...opts, persistentStep: persistent, l2Prefetch, mmaSeqSpan: span });
      // the persistent step runs the fused step's arithmetic in the same order, and a prefetch is only a hint: any
      // difference from the session without them is a race
      // (nor is where the mma step's batch is split)
      const fused = persistent || l2Prefetch || span ? engine.openDecode(states, opts) : null;
      try {
        let tokens = Array.from({ length: batch }, (_, i) => (i * 7919 + 11) % engine.core.config.vocabSize);
        let worst = 0;
        let fromFused = 0;
        for (let i = 0; i < 16; i++) {
          const a = await plain.step(tokens, { logits: true, argmax: true });
          const b = await other.step(tokens, { logits: true });
          worst = Math.max(worst, maxAbs(a.logits!, b.logits!) / largest([a.logits!]));
          if (fused)
            fromFused = Math.max(fromFused, maxAbs((await fused.step(tokens, { logits: true })).logits!, b.logits!));
          tokens = Array.from(a.tokens!);
        }
        // a shape the persistent step or the prefetch does not take runs without it (1.4b: both), as designed
        const fallsBack = (persistent && !other.persistent) || (l2Prefetch && !other.l2Prefetch);
        const same =
          other.fused === fusedStep &&
          other.mma === mma &&
          other.ssmSeqs === ssmSeqs &&
          other.mmaGemms === mmaGemms &&
          (fallsBack || (other.persistent === persistent && other.l2Prefetch === l2Prefetch));
        const ok = same && other.usesGraph && worst <= 0.03 && fromFused === 0;
        report.check('decode', name, ok, {
          worstRelDiff: worst,
          programmatic: other.programmatic,
          ...(fused ? { maxDiffFromFused: fromFused, graphError: other.graphError ?? '', fallsBack } : {}),
        });
      } finally {
        plain.dispose();
        other.dispose();
        fused?.dispose();
      }
    });
  }
}

/**
 * head_greedy on the GPU against the logits head: 16 greedy steps from empty states at batch 1 and 8, fused step and
 * six launches; each token it picks must score within bf16 rounding (0.5% of the largest |logit|) of the row's
 * largest logit, so a race in its cross-block reduction cannot pass unseen (exact ids may differ at near-ties).
 */
export async function checkGreedyHead(t: BenchTarget, report: Report): Promise<void> {
  const { engine } = t;
  const { vocabSize } = engine.core.config;
  for (const batch of [1, 8])
    for (const fusedStep of [true, false]) {
      const name = `greedy head = argmax of the logits ${t.shape} batch ${batch} fused=${fusedStep}`;
      await report.guard('decode', name, async () => {
        const states = Array.from({ length: batch }, () => engine.emptyState());
        const logitsHead = engine.openDecode(states, { fusedStep, greedyHead: false });
        const greedy = engine.openDecode(states, { fusedStep, greedyHead: true });
        try {
          let tokens = Array.from({ length: batch }, (_, i) => (i * 7919 + 11) % vocabSize);
          let worst = 0;
          let same = 0;
          for (let i = 0; i < 16; i++) {
            const a = await logitsHead.step(tokens, { logits: true, argmax: true });
            const b = await greedy.step(tokens, { argmax: true });
            const scale = largest([a.logits!]);
            for (let r = 0; r < batch; r++) {
              const row = a.logits!.subarray(r * vocabSize, (r + 1) * vocabSize);
              worst = Math.max(worst, (row[a.tokens![r]!]! - row[b.tokens![r]!]!) / scale);
              if (a.tokens![r] === b.tokens![r]) same++;
            }
            tokens = Array.from(a.tokens!);
          }
          const ok = greedy.greedyHead && greedy.usesGraph && worst <= 0.005;
          report.check('decode', name, ok, { worstGapOfLargest: worst, sameTokens: same, of: 16 * batch });
        } finally {
          logitsHead.dispose();
          greedy.dispose();
        }
      });
    }
}

/**
 * A few graph-replayed decode steps of each form, nothing timed: phase `decode-probe`, for running under Nsight
 * Compute (`ncu`), whose per-kernel times carry no event nodes (benchDecodeBreakdown) and no programmatic overlap.
 */
export async function probeDecode(t: BenchTarget, report: Report): Promise<void> {
  for (const [batch, fusedStep, greedyHead, mmaStep] of [
    [1, true, true, false],
    [8, true, false, false],
    [8, false, true, false],
    [64, false, false, false],
    [64, false, false, 'partials'],
    [64, false, false, 'gemm'],
  ] as const) {
    await withDecodeSession(
      t.engine,
      batch,
      { useGraphs: true, fusedStep, programmatic: true, greedyHead, mmaStep },
      async (session, step) => {
        for (let i = 0; i < 4; i++) await step();
        const { fused, usesGraph: graph } = session;
        report.row('decodeProbe', {
          shape: t.shape,
          batch,
          fused,
          mma: session.mma ?? '',
          greedyHead: session.greedyHead,
          graph,
          steps: 7,
        });
      },
    );
  }
}

/**
 * Phase prefill-probe: one plain prefill of each length, nothing timed, to run under a profiler (ncu -k scan_chunk_state
 * -c 1 profiles the first layer's scan at the first length).
 */
export async function probePrefill(t: BenchTarget, report: Report, lengths: number[]): Promise<void> {
  for (const L of lengths) {
    await t.engine.prefill(randomIds(L, t.config.vocabSize, L), { protect: PROTECT });
    report.row('prefillProbe', { shape: t.shape, L });
  }
}

/** Decode tokens/s: fused step kernels or the prefill's launches, CUDA graph or eager; median of 5 runs of 64 steps. */
export async function benchDecode(
  t: BenchTarget,
  report: Report,
  deadline: Deadline,
  batches: number[],
): Promise<void> {
  const { engine } = t;
  const S4 = SSM_STEP_SEQS;
  // the unfused step as a session takes it past batch 2: programmatic launch and the L2 prefetch
  const unfused = { graphs: true, fused: false, programmatic: true, greedyHead: false, l2Prefetch: true } as const;
  const variants = [
    { graphs: true, fused: true, programmatic: true, greedyHead: true, ssmSeqs: 1, persistent: true },
    { graphs: true, fused: true, programmatic: true, greedyHead: true, ssmSeqs: 1, persistent: true, l2Prefetch: true },
    { graphs: true, fused: true, programmatic: true, greedyHead: true, ssmSeqs: 1 },
    { graphs: true, fused: true, programmatic: true, greedyHead: true, ssmSeqs: 1, l2Prefetch: true },
    { graphs: true, fused: true, programmatic: true, greedyHead: true, ssmSeqs: 1, l2Prefetch: true, head: true },
    { graphs: true, fused: true, programmatic: true, greedyHead: false, ssmSeqs: 1 },
    { graphs: true, fused: true, programmatic: true, greedyHead: false, ssmSeqs: 1, l2Prefetch: true },
    { graphs: true, fused: true, programmatic: false, greedyHead: false, ssmSeqs: 1 },
    { graphs: true, fused: false, programmatic: true, greedyHead: false, ssmSeqs: 1 },
    { ...unfused, ssmSeqs: 1 },
    { ...unfused, ssmSeqs: 1, mma: 'partials' },
    { ...unfused, ssmSeqs: 1, mma: 'gemm' },
    { ...unfused, ssmSeqs: S4, mma: 'gemm' },
    // x_proj and out_proj as step_gemm_mma (from batch 4)
    { ...unfused, ssmSeqs: S4, gemms: true },
    { ...unfused, ssmSeqs: 1, mma: 'partials', gemms: true },
    { ...unfused, ssmSeqs: S4, mma: 'gemm', span: 16, gemms: true },
    // the mma step's batch spread over blocks of 16 or 32 sequences (from batch 24 only)
    { ...unfused, ssmSeqs: 1, mma: 'partials', span: 16 },
    { ...unfused, ssmSeqs: 1, mma: 'partials', span: 32 },
    { ...unfused, ssmSeqs: S4, mma: 'gemm', span: 16 },
    { ...unfused, ssmSeqs: S4, mma: 'gemm', span: 32 },
    { graphs: true, fused: false, programmatic: true, greedyHead: false, ssmSeqs: S4 },
    { ...unfused, ssmSeqs: S4 },
    { ...unfused, ssmSeqs: 2 },
    { ...unfused, ssmSeqs: 2, mma: 'gemm', span: 16 },
    { graphs: true, fused: false, programmatic: false, greedyHead: false, ssmSeqs: 1 },
    { graphs: true, fused: false, programmatic: false, greedyHead: false, ssmSeqs: S4 },
    { graphs: false, fused: false, programmatic: false, greedyHead: false, ssmSeqs: 1 },
  ] as const;
  for (const batch of batches) {
    for (const variant of variants) {
      const { graphs, fused, programmatic, greedyHead, ssmSeqs } = variant;
      const persistent = 'persistent' in variant;
      const l2Prefetch = 'l2Prefetch' in variant;
      const mma: MmaStep | false = 'mma' in variant ? variant.mma : false;
      const l2PrefetchHead = 'head' in variant;
      const span = 'span' in variant ? variant.span : undefined;
      if ((span !== undefined || ssmSeqs === 2) && batch < 24) continue;
      const mmaGemms = 'gemms' in variant;
      if (mmaGemms && batch < 4) continue;
      if (!graphs && batch > 1 && batch < 8) continue; // eager steps only as the reference points
      if (batch === 32 && !(programmatic && l2Prefetch)) continue; // at 32 only the default forms
      // the fused step and the greedy head take at most 8 sequences (ops-step.ts)
      if ((fused || greedyHead) && batch > 8) continue;
      const form =
        `graphs=${graphs} fused=${fused} pdl=${programmatic} greedyHead=${greedyHead} ssmSeqs=${ssmSeqs}` +
        (persistent ? ' persistent' : '') +
        (l2Prefetch ? ' l2Prefetch' : '') +
        (mma ? ` mma=${mma}` : '') +
        (l2PrefetchHead ? ' l2PrefetchHead' : '') +
        (span ? ` span=${span}` : '') +
        (mmaGemms ? ' mmaGemms' : '');
      const name = `decode ${t.shape} ${engine.name} batch ${batch} ${form}`;
      if (!deadline.has(20)) {
        report.skip(`${name}: time budget`);
        continue;
      }
      await report.guard('bench', name, async () => {
        const opts = {
          useGraphs: graphs,
          fusedStep: fused,
          programmatic,
          greedyHead,
          ssmSeqs,
          persistentStep: persistent,
          l2Prefetch,
          l2PrefetchHead,
          mmaStep: mma,
          mmaSeqSpan: span,
          mmaGemms,
        };
        await withDecodeSession(engine, batch, opts, async (session, step) => {
          const steps = 64;
          const runs: number[] = [];
          for (let r = 0; r < 5; r++) {
            const t0 = performance.now();
            for (let i = 0; i < steps; i++) await step();
            runs.push((performance.now() - t0) / steps);
          }
          const ms = median(runs);
          // the same steps' GPU time without the host between them (graph replays back to back), and generation's
          // greedy path (GREEDY_AHEAD steps a call, each step's argmax fed to the next on the device)
          let gpuMsPerStep: number | null = null;
          let greedyMsPerStep: number | null = null;
          if (session.usesGraph) {
            let t0 = performance.now();
            session.replay(steps);
            gpuMsPerStep = (performance.now() - t0) / steps;
            const greedy: number[] = [];
            for (let r = 0; r < 5; r++) {
              t0 = performance.now();
              let tokens: ArrayLike<number> = Array.from({ length: batch }, (_, i) => i + 1);
              for (let i = 0; i < steps / GREEDY_AHEAD; i++) {
                const rows = await session.stepGreedy(tokens, GREEDY_AHEAD);
                tokens = rows.subarray((GREEDY_AHEAD - 1) * batch);
              }
              greedy.push((performance.now() - t0) / steps);
            }
            greedyMsPerStep = median(greedy);
          }
          report.row('decode', {
            shape: t.shape,
            engine: engine.name,
            batch,
            fused: session.fused,
            persistent: session.persistent,
            mma: session.mma ?? '',
            mmaSeqSpan: session.mma ? session.mmaSeqSpan : '',
            mmaGemms: session.mmaGemms,
            l2Prefetch: session.l2Prefetch,
            headPrefetchBytes: session.headPrefetchBytes,
            programmatic: session.programmatic,
            greedyHead: session.greedyHead,
            ssmSeqs: session.fused ? '' : session.ssmSeqs,
            graph: session.usesGraph,
            graphError: session.graphError ?? '',
            msPerStep: ms,
            minMsPerStep: Math.min(...runs),
            gpuMsPerStep: gpuMsPerStep ?? '',
            greedyMsPerStep: greedyMsPerStep ?? '',
            greedyTokensPerS: greedyMsPerStep ? Math.round(batch / (greedyMsPerStep / 1e3)) : '',
            tokensPerS: Math.round(batch / (ms / 1e3)),
          });
        });
      });
    }
  }
}

/**
 * Where a decode step's time goes, launch by launch, inside the replayed CUDA graph: the profiler's events are captured
 * between the launches (profiler.ts read()), so the intervals hold no host gaps; 10 replays are summed. The event
 * nodes add a little to each interval, so the total is a few percent above the plain graph's step.
 */
export async function benchDecodeBreakdown(t: BenchTarget, report: Report, deadline: Deadline): Promise<void> {
  const { engine } = t;
  const device = engine.core.device;
  for (const batch of [1, 8, 64]) {
    for (const [fused, l2Prefetch, mma, mmaGemms] of [
      [true, false, false, false],
      [true, true, false, false],
      [false, false, false, false],
      [false, true, false, false],
      [false, true, false, true],
      [false, true, 'partials', false],
      [false, true, 'gemm', false],
    ] as const) {
      if (fused && batch > 8) continue;
      if (mmaGemms && batch < 4) continue;
      const name =
        `decode breakdown ${t.shape} ${engine.name} batch ${batch} fused=${fused} l2Prefetch=${l2Prefetch}` +
        (mma ? ` mma=${mma}` : '') +
        (mmaGemms ? ' mmaGemms' : '');
      if (!deadline.has(15)) {
        report.skip(`${name}: time budget`);
        continue;
      }
      await report.guard('bench', name, async () => {
        const steps = 10;
        const byLabel = new Map<string, KernelTime>();
        device.enableProfiler(true); // before the session: its captured graph holds the events
        try {
          // event nodes between the kernels would break programmatic edges anyway, so those launches are plain here
          const opts: DecodeSessionOptions = {
            useGraphs: true,
            fusedStep: fused,
            programmatic: false,
            l2Prefetch,
            mmaStep: mma,
            mmaGemms,
          };
          await withDecodeSession(engine, batch, opts, async (session, step) => {
            if (!session.usesGraph) throw new Error(`no graph: ${session.graphError}`);
            for (let i = 0; i < steps; i++) {
              await step();
              for (const k of device.profiler!.read()) {
                const sum = byLabel.get(k.label) ?? { label: k.label, calls: 0, ms: 0 };
                byLabel.set(k.label, { label: k.label, calls: sum.calls + k.calls, ms: sum.ms + k.ms });
              }
            }
          });
        } finally {
          device.enableProfiler(false);
        }
        const times = [...byLabel.values()].sort((a, b) => b.ms - a.ms);
        const total = times.reduce((a, b) => a + b.ms, 0);
        for (const k of [
          ...times,
          { label: 'TOTAL (events)', calls: times.reduce((a, b) => a + b.calls, 0), ms: total },
        ])
          report.row('decodeBreakdown', {
            shape: t.shape,
            engine: engine.name,
            batch,
            fused,
            l2Prefetch,
            mma: mma || '',
            mmaGemms,
            graph: true,
            kernel: k.label,
            callsPerStep: k.calls / steps,
            usPerStep: (1e3 * k.ms) / steps,
            pct: (100 * k.ms) / total,
          });
      });
    }
  }
}

/** One profiled prefill per mode: where the time goes, kernel by kernel. */
export async function benchBreakdown(t: BenchTarget, report: Report, deadline: Deadline, L: number): Promise<void> {
  const { engine, config } = t;
  const device = engine.core.device;
  for (const mode of ['mamba', 'decimamba'] as const) {
    if (!deadline.has(20)) {
      report.skip(`breakdown ${t.shape} ${engine.name} ${mode}: time budget`);
      continue;
    }
    await report.guard('bench', `breakdown ${t.shape} ${engine.name} L=${L} ${mode}`, async () => {
      const decimation = mode === 'decimamba' ? paperDecimation(config) : null;
      const ids = randomIds(L, config.vocabSize, 77);
      await engine.prefill(ids, { decimation, protect: PROTECT });
      device.enableProfiler(true);
      let times: KernelTime[] = [];
      try {
        device.profiler!.begin();
        await engine.prefill(ids, { decimation, protect: PROTECT });
        times = device.profiler!.collect();
      } finally {
        device.enableProfiler(false);
      }
      const total = times.reduce((a, b) => a + b.ms, 0);
      for (const k of times) {
        report.row('breakdown', {
          shape: t.shape,
          engine: engine.name,
          L,
          mode,
          kernel: k.label,
          calls: k.calls,
          ms: k.ms,
          pct: (100 * k.ms) / total,
        });
      }
      report.row('breakdown', {
        shape: t.shape,
        engine: engine.name,
        L,
        mode,
        kernel: 'TOTAL (GPU, events)',
        calls: times.reduce((a, b) => a + b.calls, 0),
        ms: total,
        pct: 100,
      });
    });
  }
}
