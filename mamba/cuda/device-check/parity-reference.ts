// Whole-model parity computed here: the TypeScript reference on a random mamba-130m-shaped model (short prompts,
// plus a batch of them) and, where the reference is too slow (long prompts), self-consistency: prefill vs prefill +
// step, one pass vs segments, a batch vs its sequences one by one.
import type { DecimationConfig, MambaConfig, MambaWeights, PrefillResult } from '../../engine.ts';
import { ReferenceEngine } from '../../reference/index.ts';
import { createRng } from '../../rng.ts';
import { CudaEngine, type CudaEngineOptions } from '../engine.ts';
import {
  BF16_KEPT_OVERLAP,
  BF16_LOGIT_TOL,
  keptEqual,
  keptOverlap,
  largest,
  maxAbs,
  maxStateDiff,
} from './parity-metrics.ts';
import type { Deadline, Report } from './report.ts';

/** What both parity runs work on: one model's engines in each precision, its weights, and where results go. */
export interface ParityTarget {
  engines: { fp32: CudaEngine; bf16: CudaEngine };
  config: MambaConfig;
  weights: MambaWeights;
  report: Report;
  deadline: Deadline;
  /** The model shape's name, at the start of every check's name. */
  label: string;
}

/** A random model against the TypeScript reference (slow in JS: short prompts), plus a batch of them. */
export async function referenceParity(target: ParityTarget): Promise<void> {
  const { engines, config, weights, report, deadline, label } = target;
  const ref = new ReferenceEngine(config, weights);
  const rng = createRng(17);
  const ids = (n: number) => Array.from({ length: n }, () => rng.int(config.vocabSize));
  const mid = Math.floor(config.nLayer / 2);
  const cases: {
    name: string;
    ids: number[];
    decimation: DecimationConfig | null;
    protect: number;
    positions: number[];
  }[] = [
    { name: 'plain L=48', ids: ids(48), decimation: null, protect: 1, positions: [0, 20, 47] },
    {
      name: `deci L=80 layer ${mid}`,
      ids: ids(80),
      decimation: { layers: [mid], beta: 0.5, lBase: 24, minSeqLen: 4 },
      protect: 4,
      positions: [77, 79],
    },
    {
      name: `deci L=64 layers ${Math.min(2, mid - 1)},${mid}`,
      ids: ids(64),
      decimation: { layers: [Math.min(2, mid - 1), mid], beta: 0.5, lBase: 32, minSeqLen: 4 },
      protect: 2,
      positions: [63],
    },
  ];
  const refs: PrefillResult[] = [];
  for (const c of cases) {
    if (!deadline.has(60)) {
      report.skip(`reference parity ${label} ${c.name}: time budget`);
      continue;
    }
    const t0 = performance.now();
    let r: PrefillResult;
    let step: { logits: Float32Array };
    try {
      r = await ref.prefill(c.ids, { decimation: c.decimation, protect: c.protect, logitPositions: c.positions });
      step = await ref.step(7, r.state);
    } catch (err) {
      report.check('reference', `${label} ${c.name}: the reference itself`, false, {}, (err as Error).message);
      continue;
    }
    refs.push(r);
    for (const precision of ['fp32', 'bf16'] as const) {
      await report.guard(`reference-${precision}`, `${label} ${c.name}`, async () => {
        const e = engines[precision];
        const g = await e.prefill(c.ids, { decimation: c.decimation, protect: c.protect, logitPositions: c.positions });
        const dLogit = Math.max(...g.logits.map((l, i) => maxAbs(l, r.logits[i]!)));
        const gs = await e.step(7, g.state);
        const dStep = maxAbs(gs.logits, step.logits);
        const kept = keptEqual(g.kept, r.kept);
        if (precision === 'fp32') {
          const dState = maxStateDiff(g.state, r.state);
          report.check(
            'reference-fp32',
            `${label} ${c.name}`,
            dLogit <= 1e-3 && dStep <= 1e-3 && dState <= 1e-3 && kept,
            { maxDLogit: dLogit, maxDStep: dStep, maxDState: dState, kept, refMs: performance.now() - t0 },
          );
        } else {
          const rel = Math.max(dLogit, dStep) / largest([...r.logits, step.logits]);
          report.check('reference-bf16', `${label} ${c.name}`, rel <= BF16_LOGIT_TOL, {
            maxDLogit: dLogit,
            maxDStep: dStep,
            relToMax: rel,
            kept,
          });
        }
      });
    }
  }
  if (refs.length === cases.length) {
    await report.guard('batch', `${label} batch of the reference cases`, async () => {
      const batch = await engines.fp32.prefillBatch(
        cases.map((c) => ({
          ids: c.ids,
          options: { decimation: c.decimation, protect: c.protect, logitPositions: c.positions },
        })),
      );
      const d = Math.max(...batch.map((b, i) => Math.max(...b.logits.map((l, j) => maxAbs(l, refs[i]!.logits[j]!)))));
      report.check(
        'batch',
        `${label} batch of the reference cases vs reference (fp32)`,
        d <= 1e-3 && batch.every((b, i) => keptEqual(b.kept, refs[i]!.kept)),
        { maxDLogit: d, passes: engines.fp32.lastPasses.length },
      );
    });
  }
}

/** Long prompts, where the JS reference is too slow: the engine agrees with itself across ways of computing the same thing. */
export async function selfConsistency(
  target: ParityTarget,
  length: number,
  engineOptions: CudaEngineOptions,
): Promise<void> {
  const { engines, config, weights, report, deadline, label } = target;
  const rng = createRng(23);
  const ids = Array.from({ length }, () => rng.int(config.vocabSize));
  const deci: DecimationConfig = { layers: [Math.floor(config.nLayer / 2)], beta: 0.5, lBase: 2000, minSeqLen: 20 };
  for (const precision of ['fp32', 'bf16'] as const) {
    if (!deadline.has(30)) {
      report.skip(`self-consistency ${label} ${precision}: time budget`);
      continue;
    }
    const e = engines[precision];
    const tol = 1e-3;
    await report.guard(`self-${precision}`, `${label} prefill(L) = prefill(L−1) + step, L=${length}`, async () => {
      const full = await e.prefill(ids);
      const part = await e.prefill(ids.slice(0, -1));
      const step = await e.step(ids[length - 1]!, part.state);
      const d = maxAbs(full.logits[0]!, step.logits);
      const rel = d / largest([full.logits[0]!]);
      report.check(
        `self-${precision}`,
        `${label} prefill(L) = prefill(L−1) + step, L=${length}`,
        precision === 'fp32' ? d <= tol : rel <= BF16_LOGIT_TOL,
        { maxDLogit: d, relToMax: rel, dState: maxStateDiff(full.state, step.state) },
      );
    });
    await report.guard(
      `self-${precision}`,
      `${label} one pass = segments carrying the state, L=${length}`,
      async () => {
        const segmented = CudaEngine.create(config, weights, {
          ...engineOptions,
          precision,
          maxTokensPerPass: Math.ceil(length / 3) + 7,
        });
        try {
          const positions = [0, Math.floor(length / 2), length - 1];
          const [one, seg] = [
            await e.prefill(ids, { logitPositions: positions }),
            await segmented.prefill(ids, { logitPositions: positions }),
          ];
          const d = Math.max(...one.logits.map((l, i) => maxAbs(l, seg.logits[i]!)));
          const rel = d / largest(one.logits);
          report.check(
            `self-${precision}`,
            `${label} one pass = segments carrying the state, L=${length}`,
            (precision === 'fp32' ? d <= 1e-3 : rel <= BF16_LOGIT_TOL) && segmented.lastPasses.length === 3,
            {
              maxDLogit: d,
              relToMax: rel,
              passes: segmented.lastPasses.length,
              dState: maxStateDiff(one.state, seg.state),
            },
          );
        } finally {
          await segmented.dispose();
        }
      },
    );
    await report.guard(`self-${precision}`, `${label} DeciMamba batch of 8 = one by one`, async () => {
      const lengths = [length, 3000, 100, Math.floor(length / 2), 2500, 17, 4096, 1200];
      const reqs = lengths.map((n, i) => ({
        ids: ids.slice(0, n),
        options: { decimation: i % 2 === 0 ? deci : null, protect: 1 + (i % 5) },
      }));
      const batch = await e.prefillBatch(reqs);
      let d = 0;
      let kept = true;
      let overlap = 1;
      for (const [i, r] of reqs.entries()) {
        const one = await e.prefill(r.ids, r.options);
        d = Math.max(d, maxAbs(batch[i]!.logits[0]!, one.logits[0]!));
        kept &&= keptEqual(batch[i]!.kept, one.kept);
        overlap = Math.min(overlap, keptOverlap(batch[i]!.kept, one.kept));
      }
      // the GEMMs of a batch and of a single sequence may pick different cuBLAS kernels: equal up to rounding, so
      // fp32 must keep the same tokens and bf16 the same up to near-ties at the K-th score
      const keptOk = precision === 'fp32' ? kept : overlap >= BF16_KEPT_OVERLAP;
      report.check(
        `self-${precision}`,
        `${label} DeciMamba batch of 8 = one by one`,
        keptOk && d <= (precision === 'fp32' ? 1e-3 : 0.05 * largest(batch.map((b) => b.logits[0]!))),
        { maxDLogit: d, kept, keptOverlap: overlap, passes: e.lastPasses.length },
      );
    });
  }
}
