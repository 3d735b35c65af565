// Where the WASM prefill/decode time goes: times one layer's matmuls and its selective scan as stand-alone graphs
// (built by the exporter's own functions, on the model's real weights) against the whole model, in onnxruntime-web.
// Process CPU time, best of several runs (the machine is shared, wall time is noisy).
// Run: npx tsx bench/onnx-profile.ts [--model <checkpoint>]   (writes bench/results/onnx-profile.{json,md})
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { scriptArgs } from '../mamba/script-args.ts';
import { loadModel } from '../mamba/checkpoint.ts';
import type { MambaConfig, MambaWeights } from '../mamba/engine.ts';
import { exportMambaOnnx, modelBytes } from '../mamba/onnx/export/export-model.ts';
import { DType, GraphBuilder, encodeModel } from '../mamba/onnx/export/graph-builder.ts';
import { Linears, type Quantization, rows } from '../mamba/onnx/export/layers.ts';
import { layerParams } from '../mamba/onnx/export/block.ts';
import { selectiveScan } from '../mamba/onnx/export/prefill-graph.ts';
import { createOnnxEngineNode, initOrtNode } from '../mamba/onnx/node.ts';
import { ort } from '../mamba/onnx/ort-wasm.ts';
import { randomConfig, randomWeights } from '../mamba/random-checkpoint.ts';

const ROOT = resolve(import.meta.dirname, '..');
const flags = scriptArgs(
  "npx tsx bench/onnx-profile.ts [--model <checkpoint>]\nWhere the WASM prefill/decode time goes, one layer's " +
    'matmuls and scan against the whole model (writes bench/results/onnx-profile.{json,md}).',
  { model: { type: 'string' } },
);
const dir = flags.model ?? join(ROOT, 'models/deciserve-mamba');
const { config, weights }: { config: MambaConfig; weights: MambaWeights } = existsSync(join(dir, 'config.json'))
  ? await loadModel(dir)
  : (() => {
      const c = randomConfig({ dModel: 256, nLayer: 12, vocabSize: 4096 });
      return { config: c, weights: randomWeights(c, 0) };
    })();
const L = 512;
await initOrtNode();

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
async function best(fn: () => Promise<unknown>, reps: number): Promise<number> {
  await fn();
  let min = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = cpuMs();
    await fn();
    min = Math.min(min, cpuMs() - t0);
  }
  return min;
}
const rand = (n: number) => Float32Array.from({ length: n }, () => Math.random() * 0.2);

async function graphMs(
  build: (g: GraphBuilder) => void,
  feeds: Record<string, [Float32Array, number[]]>,
  reps: number,
): Promise<number> {
  const g = new GraphBuilder('profile');
  build(g);
  const session = await ort.InferenceSession.create(
    encodeModel(
      g.build(),
      [
        { domain: '', version: 17 },
        { domain: 'com.microsoft', version: 1 },
      ],
      '',
    ),
    {
      executionProviders: ['wasm'],
      graphOptimizationLevel: 'all',
      extra: { session: { disable_prepacking: '1' } },
    },
  );
  const f = Object.fromEntries(
    Object.entries(feeds).map(([k, [data, dims]]) => [k, new ort.Tensor('float32', data, dims)]),
  );
  const ms = await best(() => session.run(f), reps);
  await session.release();
  return ms;
}

/** One layer's five linear maps on M rows. */
function linearsMs(m: number, q: Quantization, reps: number): Promise<number> {
  const layer = weights.layers[0]!;
  const { dModel, dInner, dtRank, dState } = config;
  return graphMs(
    (g) => {
      const lin = new Linears(g, q);
      const h = g.input('h', DType.float, [m, dModel]);
      const y = g.input('y', DType.float, [m, dInner]);
      const outs = [
        lin.apply(g, h, 'x', rows(layer.inProj, 0, dInner), null),
        lin.apply(g, h, 'z', rows(layer.inProj, dInner, dInner), null),
        lin.apply(g, y, 'xp', layer.xProj, null, 'none'),
        lin.apply(
          g,
          g.op1('Slice', [y, g.constI64([0]), g.constI64([dtRank]), g.constI64([1])]),
          'dt',
          layer.dtProjWeight,
          null,
          'none',
        ),
        lin.apply(g, y, 'o', layer.outProj, null),
      ];
      outs.forEach((o, i) => g.output(o, `o${i}`, DType.float, null));
      void dState;
    },
    { h: [rand(m * dModel), [m, dModel]], y: [rand(m * dInner), [m, dInner]] },
    reps,
  );
}

function scanMs(reps: number): Promise<number> {
  const { dInner, dState } = config;
  return graphMs(
    (g) => {
      const prm = layerParams(new Linears(g, 'none'), weights.layers[0]!, 0);
      const [delta, xc, b, c] = [
        g.input('delta', DType.float, [L, dInner]),
        g.input('xc', DType.float, [L, dInner]),
        g.input('b', DType.float, [L, dState]),
        g.input('c', DType.float, [L, dState]),
      ];
      const h0 = g.tensor('h0', DType.float, [dState, dInner], new Float32Array(dState * dInner));
      const { y, hLast } = selectiveScan(g, config, delta, xc, b, c, prm.aNMajor, 'exp', h0);
      g.output(y, 'y', DType.float, null);
      g.output(hLast, 'h', DType.float, null);
    },
    {
      delta: [rand(L * dInner), [L, dInner]],
      xc: [rand(L * dInner), [L, dInner]],
      b: [rand(L * dState), [L, dState]],
      c: [rand(L * dState), [L, dState]],
    },
    reps,
  );
}

function headMs(m: number, reps: number): Promise<number> {
  return graphMs(
    (g) => {
      const x = g.input('x', DType.float, [m, config.dModel]);
      g.output(new Linears(g, 'none').apply(g, x, 'head', weights.lmHead, null), 'logits', DType.float, null);
    },
    { x: [rand(m * config.dModel), [m, config.dModel]] },
    reps,
  );
}

const report: Record<string, unknown> = {
  command: 'npx tsx bench/onnx-profile.ts',
  date: new Date().toISOString(),
  model: dir.replace(ROOT + '/', ''),
  L,
};
const lines = [
  '# Where the WASM time goes (onnxruntime-web, one thread)',
  '',
  `Command: \`npx tsx bench/onnx-profile.ts\`; model ${report.model}; ${config.nLayer} layers; CPU time, best of 8 after a warm-up.`,
  '',
];
lines.push(
  '| weights | prefill L=512 total (ms) | per token (µs) | matmuls, all layers (µs/token) | scans, all layers (µs/token) | rest: conv, norms, gates, Δ, decimation If, I/O (µs/token) | decode step (ms) | of which matmuls + head (ms) |',
);
lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
// Warm up: V8 first runs wasm with its baseline compiler and tiers hot functions up in the background.
{
  const warm = await createOnnxEngineNode(modelBytes(exportMambaOnnx(config, weights)));
  for (let i = 0; i < 4; i++) await warm.prefill(Array.from({ length: L }, (_, j) => (j * 13) % config.vocabSize));
  await warm.dispose();
}
const scanPerToken = ((await scanMs(8)) / L) * 1000 * config.nLayer;
for (const q of ['none', 'int8', 'int8-dynamic', 'int4'] as Quantization[]) {
  const engine = await createOnnxEngineNode(modelBytes(exportMambaOnnx(config, weights, { quantization: q })));
  const ids = Array.from({ length: L }, (_, i) => (i * 37) % config.vocabSize);
  const total = await best(() => engine.prefill(ids), 8);
  const start = await engine.prefill(ids);
  const step =
    (await best(async () => {
      let state = start.state;
      for (let i = 0; i < 16; i++) state = (await engine.step(i + 1, state)).state;
    }, 3)) / 16;
  const matmulPerToken = ((await linearsMs(L, q, 8)) / L) * 1000 * config.nLayer;
  const decodeMatmuls = (await linearsMs(1, q, 20)) * config.nLayer + (await headMs(1, 20));
  const perToken = (total / L) * 1000;
  const rest = perToken - matmulPerToken - scanPerToken;
  report[q] = {
    totalMs: total,
    perTokenUs: perToken,
    matmulPerTokenUs: matmulPerToken,
    scanPerTokenUs: scanPerToken,
    restPerTokenUs: rest,
    stepMs: step,
    stepMatmulMs: decodeMatmuls,
  };
  lines.push(
    `| ${q === 'none' ? 'fp32' : q} | ${total.toFixed(0)} | ${perToken.toFixed(0)} | ${matmulPerToken.toFixed(0)} | ${scanPerToken.toFixed(0)} | ${rest > 0 ? rest.toFixed(0) : '≈0 (noise)'} | ${step.toFixed(2)} | ${decodeMatmuls.toFixed(2)} |`,
  );
  await engine.dispose();
}
lines.push('', "Stand-alone graphs include one run's fixed cost each, so the shares are approximate.");
const md = lines.join('\n') + '\n';
process.stdout.write(md);
writeFileSync(join(ROOT, 'bench/results/onnx-profile.md'), md);
writeFileSync(join(ROOT, 'bench/results/onnx-profile.json'), JSON.stringify(report, null, 2) + '\n');
