// Whole-model parity on the GPU: the PyTorch golden fixtures (fp32 gate: max |Δlogit| ≤ 1e-3, identical kept
// indices, states ≤ 1e-3, identical greedy tokens), the TypeScript reference on a random mamba-130m-shaped model,
// self-consistency where the reference is too slow (long prompts: prefill vs prefill + step, one pass vs segments,
// a batch vs its sequences one by one), and the bf16 path against the fp32 path on the passkey set.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint, loadModel } from '../../checkpoint.ts';
import type { DecimationConfig, MambaConfig, MambaWeights, ModelState, PrefillResult } from '../../engine.ts';
import { buildPasskeyPrompt, encodeCorpus, haystackText, judgePasskey, passkeyRng } from '../../passkey.ts';
import { ReferenceEngine } from '../../reference/index.ts';
import { readSafetensors } from '../../safetensors.ts';
import { argmax } from '../../sampling.ts';
import { createRng } from '../../rng.ts';
import type { CudaDevice } from '../device.ts';
import { CudaEngine, type CudaEngineOptions } from '../engine.ts';
import { compare, type Deadline, type Report } from './report.ts';

/** Relative tolerance the bf16 path is held to: max |Δlogit| ≤ 5% of the largest |logit| (bf16 keeps 8 mantissa bits). */
export const BF16_LOGIT_TOL = 0.05;
/** bf16 rounds ‖Δ_t‖ by ~0.4%, so tokens whose scores tie at the K-th place within that may swap; the rest must agree. */
export const BF16_KEPT_OVERLAP = 0.98;

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++)
    m = Math.max(m, Math.abs(a[i]! - b[i]!) || (Number.isNaN(a[i]! - b[i]!) ? Infinity : 0));
  return m;
}

function maxStateDiff(a: ModelState, b: ModelState): number {
  return Math.max(...a.map((s, i) => Math.max(maxAbs(s.conv, b[i]!.conv), maxAbs(s.ssm, b[i]!.ssm))));
}

function keptEqual(a: PrefillResult['kept'], b: { layer: number; indices: ArrayLike<number> }[]): boolean {
  return (
    JSON.stringify(a.map((k) => [k.layer, Array.from(k.indices)])) ===
    JSON.stringify(b.map((k) => [k.layer, Array.from(k.indices)]))
  );
}

/** Smallest share of one run's kept tokens that the other also kept, over the decimating layers (1 = identical). */
export function keptOverlap(
  a: { layer: number; indices: ArrayLike<number> }[],
  b: { layer: number; indices: ArrayLike<number> }[],
): number {
  if (a.length !== b.length) return 0;
  let min = 1;
  for (const [i, k] of a.entries()) {
    if (k.layer !== b[i]!.layer) return 0;
    const other = new Set(Array.from(b[i]!.indices));
    const n = Math.max(k.indices.length, other.size);
    min = Math.min(min, n === 0 ? 1 : Array.from(k.indices).filter((x) => other.has(x)).length / n);
  }
  return min;
}

function largest(rows: Float32Array[]): number {
  let m = 0;
  for (const r of rows) for (const v of r) m = Math.max(m, Math.abs(v));
  return m;
}

async function greedy(
  engine: { step(t: number, s: ModelState): Promise<{ logits: Float32Array; state: ModelState }> },
  logits: Float32Array,
  state: ModelState,
  n: number,
  margins?: number[],
): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    out.push(argmax(logits));
    margins?.push(topTwoMargin(logits));
    if (out.length < n) ({ logits, state } = await engine.step(out[out.length - 1]!, state));
  }
  return out;
}

/** Logit gap between the best and the second-best token: how close a greedy choice was to flipping. */
function topTwoMargin(logits: Float32Array): number {
  let a = -Infinity,
    b = -Infinity;
  for (const v of logits) {
    if (v > a) [a, b] = [v, a];
    else if (v > b) b = v;
  }
  return a - b;
}

interface GoldenCase {
  name: string;
  ids: number[];
  protect: number;
  decimation: DecimationConfig | null;
  positions: number[];
  kept: { layer: number; indices: number[] }[];
  greedy: number[];
}

/** test/fixtures/<name>/golden.json on both precisions. */
export async function goldenParity(
  device: CudaDevice,
  report: Report,
  root: string,
  maxLength = Infinity,
  engineOptions: CudaEngineOptions = {},
): Promise<void> {
  const suffix = engineOptions.scan && engineOptions.scan !== 'split' ? `-${engineOptions.scan}` : '';
  const fixtures = join(root, 'test', 'fixtures');
  const dirs = existsSync(fixtures)
    ? readdirSync(fixtures)
        .filter((d) => existsSync(join(fixtures, d, 'golden.json')))
        .sort()
    : [];
  for (const dir of dirs) {
    const golden = JSON.parse(readFileSync(join(fixtures, dir, 'golden.json'), 'utf8')) as {
      checkpoint: string;
      cases: GoldenCase[];
    };
    const tensors = readSafetensors(readFileSync(join(fixtures, dir, 'golden.safetensors')));
    const model = await loadModel(join(root, golden.checkpoint));
    for (const precision of ['fp32', 'bf16'] as const) {
      const engine = CudaEngine.create(model.config, model.weights, {
        ...engineOptions,
        device,
        precision,
        guardBytes: 256,
      });
      try {
        for (const c of golden.cases) {
          if (c.ids.length > maxLength) {
            report.skip(`golden ${dir}/${c.name} (${precision}${suffix}): longer than --max-parity-length`);
            continue;
          }
          await report.guard(`golden-${precision}${suffix}`, `${dir}/${c.name}`, async () => {
            const last = c.ids.length - 1;
            const positions = c.positions.includes(last) ? c.positions : [...c.positions, last];
            const r = await engine.prefill(c.ids, {
              decimation: c.decimation,
              protect: c.protect,
              logitPositions: positions,
            });
            const V = model.config.vocabSize;
            const g = tensors.getF32(`${c.name}.logits`);
            const goldRows = c.positions.map((_, row) => g.subarray(row * V, (row + 1) * V));
            const dLogit = Math.max(...c.positions.map((_, row) => maxAbs(r.logits[row]!, goldRows[row]!)));
            let dState = 0;
            for (let i = 0; i < model.config.nLayer; i++) {
              dState = Math.max(
                dState,
                maxAbs(r.state[i]!.conv, tensors.getF32(`${c.name}.conv.${i}`)),
                maxAbs(r.state[i]!.ssm, tensors.getF32(`${c.name}.ssm.${i}`)),
              );
            }
            const kept = keptEqual(r.kept, c.kept);
            const tokens = await greedy(engine, r.logits[positions.indexOf(last)]!, r.state, c.greedy.length);
            const sameGreedy = JSON.stringify(tokens) === JSON.stringify(c.greedy);
            if (precision === 'fp32') {
              report.check(
                `golden-fp32${suffix}`,
                `${dir}/${c.name}`,
                dLogit <= 1e-3 && dState <= 1e-3 && kept && sameGreedy,
                { maxDLogit: dLogit, maxDState: dState, kept, greedy: sameGreedy, L: c.ids.length },
              );
            } else {
              const rel = dLogit / largest(goldRows);
              const overlap = keptOverlap(r.kept, c.kept);
              report.check(
                `golden-bf16${suffix}`,
                `${dir}/${c.name}`,
                rel <= BF16_LOGIT_TOL && overlap >= BF16_KEPT_OVERLAP,
                {
                  maxDLogit: dLogit,
                  relToMax: rel,
                  tol: BF16_LOGIT_TOL,
                  kept,
                  keptOverlap: overlap,
                  greedy: sameGreedy,
                  L: c.ids.length,
                },
              );
            }
          });
        }
      } finally {
        await engine.dispose();
      }
    }
  }
}

/** A random model against the TypeScript reference (slow in JS: short prompts), plus a batch of them. */
export async function referenceParity(
  engines: { fp32: CudaEngine; bf16: CudaEngine },
  config: MambaConfig,
  weights: MambaWeights,
  report: Report,
  deadline: Deadline,
  label: string,
): Promise<void> {
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
      r = ref.prefillSync(c.ids, { decimation: c.decimation, protect: c.protect, logitPositions: c.positions });
      step = ref.stepSync(7, r.state);
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
  engines: { fp32: CudaEngine; bf16: CudaEngine },
  config: MambaConfig,
  weights: MambaWeights,
  report: Report,
  deadline: Deadline,
  label: string,
  length: number,
  engineOptions: CudaEngineOptions,
): Promise<void> {
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

/** The shipped model's passkey prompts: bf16 must give the same greedy answer as fp32 and keep the same tokens up to near-ties. */
export async function passkeyAgreement(
  device: CudaDevice,
  report: Report,
  root: string,
  deadline: Deadline,
  maxLength = Infinity,
): Promise<void> {
  const dir = join(root, 'models', 'deciserve-mamba');
  if (!existsSync(join(dir, 'haystack.txt'))) return report.skip('passkey agreement: no shipped model');
  const ck = await loadCheckpoint(dir);
  const settings = JSON.parse(readFileSync(join(dir, 'deciserve.json'), 'utf8')) as { decimation: DecimationConfig };
  const hay = encodeCorpus(ck.tokenizer, haystackText(readFileSync(join(dir, 'haystack.txt'), 'utf8')));
  const f32 = CudaEngine.create(ck.config, ck.weights, { device, precision: 'fp32' });
  const b16 = CudaEngine.create(ck.config, ck.weights, { device, precision: 'bf16' });
  try {
    if (maxLength >= 600) {
      await report.guard('reference-fp32', 'shipped model, passkey prompt L=600, DeciMamba', async () => {
        const p = buildPasskeyPrompt(ck.tokenizer, hay, 600, 0.5, passkeyRng(1, 600, 0.5, 0));
        const decimation = { ...settings.decimation, lBase: 200 }; // so 600 tokens are actually decimated
        const ref = new ReferenceEngine(ck.config, ck.weights).prefillSync(p.ids, { decimation, protect: p.protect });
        const got = await f32.prefill(p.ids, { decimation, protect: p.protect });
        const d = maxAbs(got.logits[0]!, ref.logits[0]!);
        const kept = keptEqual(got.kept, ref.kept);
        report.check(
          'reference-fp32',
          'shipped model, passkey prompt L=600, DeciMamba',
          d <= 1e-3 && kept && got.kept.length > 0,
          { maxDLogit: d, kept, maxDState: maxStateDiff(got.state, ref.state) },
        );
      });
    }
    let agreeKept = 0,
      agreeGreedy = 0,
      total = 0,
      correct32 = 0,
      correct16 = 0,
      minOverlap = 1;
    for (const length of [1000, 4000, 16000, 64000].filter((l) => l <= maxLength)) {
      for (const depth of [0, 0.5, 1]) {
        for (let sample = 0; sample < 2; sample++) {
          if (!deadline.has(20)) break;
          const p = buildPasskeyPrompt(ck.tokenizer, hay, length, depth, passkeyRng(0, length, depth, sample));
          const opts = { decimation: settings.decimation, protect: p.protect };
          const [a, b] = [await f32.prefill(p.ids, opts), await b16.prefill(p.ids, opts)];
          const margins: number[] = [];
          const ta = await greedy(f32, a.logits[0]!, a.state, 8, margins);
          const tb = await greedy(b16, b.logits[0]!, b.state, 8);
          total++;
          if (keptEqual(a.kept, b.kept)) agreeKept++;
          minOverlap = Math.min(minOverlap, keptOverlap(a.kept, b.kept));
          if (JSON.stringify(ta) === JSON.stringify(tb)) agreeGreedy++;
          else {
            const step = ta.findIndex((t, i) => t !== tb[i]);
            report.row('passkey-bf16-mismatch', {
              length,
              depth,
              sample,
              step,
              fp32Margin: margins[step],
              fp32: ck.tokenizer.decode(ta),
              bf16: ck.tokenizer.decode(tb),
              key: p.key,
              keptOverlap: keptOverlap(a.kept, b.kept),
            });
          }
          if (judgePasskey(ck.tokenizer.decode(ta), p.key)) correct32++;
          if (judgePasskey(ck.tokenizer.decode(tb), p.key)) correct16++;
        }
      }
    }
    if (total === 0) return report.skip('passkey agreement: no prompt within the length limit and time budget');
    // identical greedy answers everywhere; kept sets identical up to near-ties at the K-th score (BF16_KEPT_OVERLAP)
    report.check(
      'passkey-bf16',
      'bf16 vs fp32 on the passkey set (DeciMamba, shipped model)',
      minOverlap >= BF16_KEPT_OVERLAP && agreeGreedy === total,
      {
        prompts: total,
        sameKept: agreeKept,
        minKeptOverlap: minOverlap,
        overlapTol: BF16_KEPT_OVERLAP,
        sameGreedy: agreeGreedy,
        fp32Correct: correct32,
        bf16Correct: correct16,
      },
    );
  } finally {
    await f32.dispose();
    await b16.dispose();
  }
}

export { compare };
