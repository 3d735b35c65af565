// Whole-model parity against fixed answers: the PyTorch golden fixtures (fp32 gate: max |Δlogit| ≤ 1e-3, identical
// kept indices, states ≤ 1e-3, identical greedy tokens; bf16: logits within BF16_LOGIT_TOL, kept indices identical up
// to near-ties of the reference's scores) and, on the shipped model's passkey set, the bf16 path against the fp32 path.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadCheckpoint, loadModel } from '../../checkpoint.ts';
import type { DecimationConfig } from '../../engine.ts';
import { greedyTokens, replayGoldenCase } from '../../golden-case.ts';
import { buildPasskeyPrompt, encodeCorpus, haystackText, judgePasskey, passkeyRng } from '../../passkey.ts';
import { prepareModel, ReferenceEngine, referenceTrace } from '../../reference/index.ts';
import { readSafetensors } from '../../safetensors.ts';
import type { CudaDevice } from '../device.ts';
import { CudaEngine, type CudaEngineOptions } from '../engine.ts';
import {
  BF16_KEPT_OVERLAP,
  BF16_LOGIT_TOL,
  keptEqual,
  keptOverlap,
  keptUpToTies,
  largest,
  maxAbs,
  maxStateDiff,
  topTwoMargin,
} from './parity-metrics.ts';
import type { Deadline, Report } from './report.ts';

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
  const { scan, scanFmaExp } = engineOptions;
  const suffix = (scan ? `-${scan}` : '') + (scanFmaExp ? `-fma${scanFmaExp}` : '');
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
    let reference: ReturnType<typeof prepareModel> | null = null; // prepared where a bf16 kept set differs
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
            const { result: r, greedy: tokens } = await replayGoldenCase(engine, c);
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
              // where the kept sets differ, the reference's own ‖Δ‖ scores say whether only near-ties swapped
              // (parity-metrics.ts keptUpToTies; ~10 s of the reference at 6K tokens of the shipped model)
              const ties =
                kept || !c.decimation
                  ? { ok: kept, missing: 0, worstGap: 0 }
                  : keptUpToTies(
                      r.kept,
                      c.kept,
                      referenceTrace((reference ??= prepareModel(model.config, model.weights)), c.ids, {
                        decimation: c.decimation,
                        protect: c.protect,
                      }).scores,
                    );
              report.check(`golden-bf16${suffix}`, `${dir}/${c.name}`, rel <= BF16_LOGIT_TOL && ties.ok, {
                maxDLogit: dLogit,
                relToMax: rel,
                tol: BF16_LOGIT_TOL,
                kept,
                keptOverlap: overlap,
                keptMissing: ties.missing,
                worstScoreGap: ties.worstGap,
                greedy: sameGreedy,
                L: c.ids.length,
              });
            }
          });
        }
      } finally {
        await engine.dispose();
      }
    }
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
        const ref = await new ReferenceEngine(ck.config, ck.weights).prefill(p.ids, { decimation, protect: p.protect });
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
          const ta = await greedyTokens(f32, a.logits[0]!, a.state, 8, (l) => margins.push(topTwoMargin(l)));
          const tb = await greedyTokens(b16, b.logits[0]!, b.state, 8);
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
