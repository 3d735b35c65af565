// `deciserve bench cost`: the cost model fed with what was measured (bench/results/*.json) → bench/results/cost.json.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../load/scenarios.ts';
import {
  breakEven,
  decimatedWorkFraction,
  edgeRequestDollars,
  jobDollars,
  type Decimation,
  type JobCost,
  type Prices,
  type S3Calls,
  type Throughput,
} from './model.ts';

export const LENGTHS = [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000];
const NEW_TOKENS = 16;
const read = (rel: string) => JSON.parse(readFileSync(join(REPO, rel), 'utf8'));
const round = (x: number, digits = 4) => Number(x.toPrecision(digits));

interface RunnerMeasure {
  file: string;
  command: string;
  /** seconds per prompt token, by variant, on the runner's reference engine (CPU) */
  secondsPerToken: { mamba: number; decimamba: number };
  s3CallsPerJob: S3Calls;
  bytesOutPerJob: number;
  promptTokensPerJob: number;
}

/**
 * Runner measurements: of all load (steps[].runner) and quality suite (runner) results that ran both variants through a
 * runner, the one with the most prompt tokens gives engine seconds per token by decimation and S3 calls per job.
 */
export function runnerMeasurement(): RunnerMeasure | null {
  const dir = join(REPO, 'bench/results');
  let best: (RunnerMeasure & { tokens: number }) | null = null;
  for (const f of readdirSync(dir)
    .filter((f) => /^(load|quality)-.*\.json$/.test(f))
    .sort()) {
    const r = JSON.parse(readFileSync(join(dir, f), 'utf8'));
    const deltas = [...(r.steps ?? []).map((s: { runner?: unknown }) => s.runner), r.runner].filter(Boolean);
    for (const rd of deltas) {
      if (
        !(rd.jobsSucceeded > 0) ||
        !(rd.byDecimation?.off?.promptTokens > 0) ||
        !(rd.byDecimation?.on?.promptTokens > 0)
      )
        continue;
      const tokens = rd.byDecimation.off.promptTokens + rd.byDecimation.on.promptTokens;
      if (best && best.tokens >= tokens) continue;
      const perJob: S3Calls = {};
      for (const [op, n] of Object.entries(rd.s3Requests as Record<string, number>))
        if (n > 0 && !op.startsWith('list') && op !== 'create_bucket') perJob[op] = n / rd.jobsSucceeded;
      const spt = (d: { engineSeconds: number; promptTokens: number; completionTokens: number }) =>
        d.engineSeconds / d.promptTokens;
      best = {
        file: `bench/results/${f}`,
        command: r.command,
        tokens,
        secondsPerToken: { mamba: spt(rd.byDecimation.off), decimamba: spt(rd.byDecimation.on) },
        s3CallsPerJob: perJob,
        bytesOutPerJob: rd.s3BytesOut / rd.jobsSucceeded,
        promptTokensPerJob: tokens / rd.jobsSucceeded,
      };
    }
  }
  return best;
}

export async function buildCostReport(command: string) {
  const prices = read('bench/cost/prices.json') as Prices & { workers: { asOf: string; source: string } };
  const onnx = read('bench/results/onnx-bench.json');
  const pp = read('bench/results/passkey-perplexity.json');
  const cfg = read('models/deciserve-mamba/config.json');
  const deci = read('models/deciserve-mamba/deciserve.json').decimation;
  const nLayer: number = cfg.n_layer ?? cfg.num_hidden_layers;
  const dInner: number = cfg.intermediate_size ?? 2 * (cfg.hidden_size ?? cfg.d_model);
  const decimation: Decimation = { nLayer, layer: deci.layers[0], lBase: deci.lBase, minSeqLen: deci.minSeqLen };
  const util = prices.assumptions.gpuUtilization;

  // Edge: workerd, int8 weights (the edge configuration), measured by bench/onnx-bench.ts.
  const int8 = onnx.results.find((r: { quantization: string }) => r.quantization === 'int8');
  const edge: Throughput = {
    id: 'edge-workerd-int8',
    label: 'Workers (workerd, ONNX int8 WASM)',
    prefillTps: int8.workerd.prefill.find((p: { length: number }) => p.length === 512).tokensPerSecond,
    decodeTps: int8.workerd.decodeTokensPerSecond,
    perHour: 0,
    utilization: 1,
    kind: 'measured',
    source: `bench/results/onnx-bench.json (${onnx.command})`,
  };

  const cpuPrice = prices.cpu[0]!;
  const measured = runnerMeasurement();
  const runners: Throughput[] = [];
  if (measured) {
    runners.push({
      id: 'cpu-runner-reference',
      label: `runner on CPU, reference engine (${cpuPrice.id})`,
      prefillTps: 1 / measured.secondsPerToken.mamba,
      decodeTps: onnx.reference.decodeTokensPerSecond,
      perHour: cpuPrice.perHour,
      utilization: util,
      kind: 'measured',
      source: `${measured.file} (${measured.command})`,
    });
  }
  // The runner's default CPU engine (RUNNER_ENGINE=auto without a GPU): one 16K job through edge → runner → S3.
  const onnxJob = read('bench/results/edge-bench-onnx-runner.json');
  const js = onnxJob.job.runnerStagesMs;
  runners.push({
    id: 'cpu-runner-onnx',
    label: `runner on CPU, ONNX engine (${cpuPrice.id})`,
    prefillTps: onnxJob.job.promptTokens / (js.prefill / 1000),
    decodeTps: onnxJob.job.completionTokens / (js.decode / 1000),
    perHour: cpuPrice.perHour,
    utilization: util,
    kind: 'measured',
    source: `bench/results/edge-bench-onnx-runner.json (${onnxJob.command}): ${onnxJob.job.promptTokens}-token job, runner prefill ${Math.round(js.prefill)} ms`,
  });
  const fp32 = onnx.results.find((r: { quantization: string }) => r.quantization === 'none');
  runners.push({
    id: 'cpu-onnx-native',
    label: `CPU, onnxruntime-node fp32 (${cpuPrice.id}; not an engine of the runner)`,
    prefillTps: fp32.nodeNative.prefill.at(-1).tokensPerSecond,
    decodeTps: fp32.nodeNative.decodeTokensPerSecond,
    perHour: cpuPrice.perHour,
    utilization: util,
    kind: 'measured',
    source: `bench/results/onnx-bench.json (${onnx.command})`,
  });
  // GPU: the runner's pass code on the CUDA engine, measured on an H200 (runner/checks/gpu-check.ts: passkey suite jobs, one
  // batched pass per length, host tokenization included). Other GPUs scale it by memory bandwidth (a small model's
  // prefill is bandwidth-bound), so their rows stay estimates; the H200 itself has no price source in prices.json.
  const gpuCheck = read('bench/results/runner-gpu-check-bf16.json');
  const longPasses = (
    gpuCheck.passes as Array<{ task: string; length: number; ms: number; promptTokens: number }>
  ).filter((q) => q.task === 'passkey' && q.length >= 16000);
  const h200Tps =
    longPasses.reduce((a, q) => a + q.promptTokens, 0) / (longPasses.reduce((a, q) => a + q.ms, 0) / 1000);
  const cudaBench = read('bench/results/cuda-bench.json');
  const decode64 = (
    cudaBench.tables.decode as Array<{ shape: string; batch: number; graph: boolean; tokensPerS: number }>
  ).find((d) => d.shape === '130m' && d.batch === 64 && d.graph)!.tokensPerS;
  for (const g of prices.gpu) {
    const scale = g.memoryBandwidthGBs / prices.h200BandwidthGBs;
    runners.push({
      id: g.id,
      label: `${g.gpu} (ESTIMATE)`,
      prefillTps: h200Tps * scale,
      decodeTps: decode64 * scale,
      perHour: g.perHour,
      utilization: util,
      kind: 'estimate',
      source: `H200-measured CUDA runner ${Math.round(h200Tps)} prompt tok/s (bench/results/runner-gpu-check-bf16.json, ${gpuCheck.command}; passkey passes ≥16K) × bandwidth ratio ${scale.toPrecision(2)}`,
    });
  }

  const s3Calls = measured?.s3CallsPerJob ?? { put_input: 1, get_input: 1, put_result: 1, head_result: 1 };
  const bytesPerPromptToken = measured ? measured.bytesOutPerJob / Math.max(1, measured.promptTokensPerJob) : 4;
  const jobOpts = (workFraction: number) => ({
    workFraction,
    s3Calls,
    bytesPerPromptToken,
    resultBytes: 1500,
    store: 'r2' as const,
    edgeRequests: 3,
  });

  const jobs: Array<{ runner: string; kind: string; length: number; variant: string } & JobCost> = [];
  for (const r of runners) {
    for (const length of LENGTHS) {
      for (const variant of ['mamba', 'decimamba'] as const) {
        // Measured: DeciMamba's own seconds/token ratio; otherwise the layer-count model.
        const wf =
          variant === 'mamba'
            ? 1
            : r.id === 'cpu-runner-reference' && measured
              ? measured.secondsPerToken.decimamba / measured.secondsPerToken.mamba
              : decimatedWorkFraction(length, decimation);
        const c = jobDollars(prices, r, { promptTokens: length, newTokens: NEW_TOKENS }, jobOpts(wf));
        jobs.push({ runner: r.id, kind: r.kind, length, variant, ...c });
      }
    }
  }

  const edgeByLength = [64, 256, 512, 1024, 2048, 4000, 8000].map((t) => {
    const e = edgeRequestDollars(prices, edge, { promptTokens: t, newTokens: NEW_TOKENS });
    return { tokens: t, cpuMs: round(e.cpuMs), dollarsPer1K: round(1000 * e.dollars) };
  });
  const scen = read('bench/scenarios/scenarios.json');
  const mix = scen.lengthMixes['edge-short'] as Array<{ tokens: number; weight: number }>;
  const mixW = mix.reduce((a, b) => a + b.weight, 0);
  const edgeMixPer1K = mix.reduce(
    (a, b) =>
      a +
      (b.weight / mixW) *
        1000 *
        edgeRequestDollars(prices, edge, { promptTokens: b.tokens, newTokens: scen.scenarios['edge-short'].maxTokens })
          .dollars,
    0,
  );

  // Accuracy per length (H200 eval, the only one reaching 64K): $ per correct passkey answer.
  const acc = (mode: string, L: number) => {
    const cells = pp.passkey[mode]?.[String(L)] as Record<string, number> | undefined;
    return cells ? Object.values(cells).reduce((a, b) => a + b, 0) / Object.values(cells).length : undefined;
  };
  // train/evaluate.py names the variant by layer, and by L_base when the sweep moved it off the paper's default
  const deciMode =
    [`decimamba_layer${decimation.layer}_lbase${decimation.lBase}`, `decimamba_layer${decimation.layer}`].find(
      (k) => pp.passkey[k],
    ) ?? `decimamba_layer${decimation.layer}`;
  const jobCost = (runner: string, L: number, v: string) =>
    jobs.find((j) => j.runner === runner && j.length === L && j.variant === v)!.total;
  const primary = 'cpu-runner-onnx'; // the runner's engine without a GPU
  const perCorrect = LENGTHS.filter((L) => acc('mamba', L) !== undefined).map((L) => {
    const am = acc('mamba', L)!;
    const ad = acc(deciMode, L)!;
    return {
      length: L,
      accuracy: { mamba: round(am, 3), decimamba: round(ad, 3) },
      dollarsPerCorrect: {
        mamba: am > 0 ? round(jobCost(primary, L, 'mamba') / am) : null,
        decimamba: ad > 0 ? round(jobCost(primary, L, 'decimamba') / ad) : null,
      },
    };
  });

  const edgeAt = (L: number) => edgeRequestDollars(prices, edge, { promptTokens: L, newTokens: NEW_TOKENS }).dollars;
  const xs = [256, 512, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000];
  const cheapestGpu = runners
    .filter((r) => r.kind === 'estimate')
    .sort((a, b) => a.perHour / a.prefillTps - b.perHour / b.prefillTps)[0]!;
  const cpuRunner = runners.find((r) => r.id === primary)!;
  const breakEvens = {
    edgeVsRunnerTokens: Object.fromEntries(
      runners.map((r) => [
        r.id,
        breakEven(
          xs,
          (L) => jobDollars(prices, r, { promptTokens: L, newTokens: NEW_TOKENS }, jobOpts(1)).total,
          edgeAt,
        ),
      ]),
    ),
    deciVsMambaPerCorrectTokens:
      perCorrect.find(
        (p) =>
          p.dollarsPerCorrect.decimamba !== null &&
          (p.dollarsPerCorrect.mamba === null || p.dollarsPerCorrect.decimamba < p.dollarsPerCorrect.mamba) &&
          p.accuracy.decimamba > p.accuracy.mamba,
      )?.length ?? null,
    gpuUtilizationToBeatCpu: {
      gpu: cheapestGpu.id,
      vs: cpuRunner.id,
      utilization: round(
        cheapestGpu.perHour / cheapestGpu.prefillTps / (cpuRunner.perHour / cpuRunner.prefillTps / util),
        3,
      ),
    },
  };

  const headline: string[] = [];
  for (const L of [16000, 64000]) {
    const pc = perCorrect.find((p) => p.length === L);
    const pct = (x: number | undefined) => `${(100 * (x ?? NaN)).toFixed(0)}%`;
    headline.push(
      `${L / 1000}K passkey accuracy (H200 eval): Mamba ${pct(pc?.accuracy.mamba)}, DeciMamba ${pct(pc?.accuracy.decimamba)}`,
    );
    const usd = (x: number | null | undefined) => (x == null ? 'n/a (no correct answers)' : `$${x.toPrecision(3)}`);
    headline.push(
      `  ${L / 1000}K $ per correct answer on ${primary}: Mamba ${usd(pc?.dollarsPerCorrect.mamba)}, DeciMamba ${usd(pc?.dollarsPerCorrect.decimamba)}`,
    );
    for (const r of runners.filter((r) =>
      ['cpu-runner-onnx', 'cpu-runner-reference', 'lambda-1xH100-PCIe'].includes(r.id),
    )) {
      headline.push(
        `  ${L / 1000}K $/job on ${r.id} (${r.kind}): Mamba $${jobCost(r.id, L, 'mamba').toPrecision(3)}, DeciMamba $${jobCost(r.id, L, 'decimamba').toPrecision(3)}`,
      );
    }
  }
  headline.push(`edge: $${edgeMixPer1K.toPrecision(3)} per 1K requests (edge-short mix, ${edge.label})`);

  return {
    command,
    date: new Date().toISOString(),
    sources: {
      prices: 'bench/cost/prices.json',
      edge: edge.source,
      runnerMeasured: measured?.file ?? null,
      accuracy: `bench/results/passkey-perplexity.json (${pp.command}, ${pp.device})`,
    },
    assumptions: {
      ...prices.assumptions,
      newTokensPerJob: NEW_TOKENS,
      store: 'r2',
      edgeRequestsPerJob: 3,
      s3CallsPerJob: s3Calls,
      bytesPerPromptToken: round(bytesPerPromptToken),
      decimation,
    },
    throughputs: runners
      .concat([edge])
      .map((t) => ({ ...t, prefillTps: round(t.prefillTps), decodeTps: round(t.decodeTps) })),
    edge: { mixPer1K: round(edgeMixPer1K), byLength: edgeByLength },
    jobs: jobs.map((j) => ({
      ...j,
      engineSeconds: round(j.engineSeconds),
      compute: round(j.compute),
      storage: round(j.storage),
      edge: round(j.edge),
      total: round(j.total),
    })),
    perCorrect,
    breakEvens,
    headline,
    gpuKernelBreakdown: existsSync(join(REPO, 'bench/results/cuda-bench.json'))
      ? 'bench/results/cuda-bench.json'
      : null,
  };
}
