// The lean decode graph (step.onnx: no If, packed state, argmax in the graph) against the reference engine.
import onnxProto from 'onnx-proto';
import { describe, expect, it } from 'vitest';
import type { ModelState } from '../mamba/engine.ts';
import { exportMambaOnnx, modelBytes } from '../mamba/onnx/export/export-model.ts';
import { STEP_FILE } from '../mamba/onnx/export/lean-step.ts';
import { createOnnxEngineNode, readOnnxExport, writeOnnxExport } from '../mamba/onnx/node.ts';
import { knownPacked, packState, unpackedView } from '../mamba/onnx/packed-state.ts';
import { argmax } from '../mamba/sampling.ts';
import { maxAbsDiff, maxStateDiff, randomIds, tempDir, tinyModel } from './helpers.ts';

const TOL = 1e-4;

describe('lean step graph', () => {
  for (const biases of [false, true]) {
    it(`decodes like the reference for 12 teacher-forced steps${biases ? ' (in/out_proj biases)' : ''}`, async () => {
      const model = tinyModel({ biases, seed: 4 });
      const ex = exportMambaOnnx(model.config, model.weights, { decimationLayers: [] });
      expect(ex.manifest.stepFile).toBe(STEP_FILE);
      const lean = await createOnnxEngineNode(modelBytes(ex));
      expect(lean.leanStep).toBe(true);
      const ids = randomIds(20, model.config.vocabSize, 5);
      let r = (await model.engine.prefill(ids.slice(0, 8))).state;
      let o = (await lean.prefill(ids.slice(0, 8))).state;
      for (const t of ids.slice(8)) {
        const [a, b] = [await model.engine.step(t, r), await lean.step(t, o)];
        expect(maxAbsDiff(a.logits, b.logits)).toBeLessThanOrEqual(TOL);
        // The greedy path returns the same token as argmax of the reference's logits, and the same state.
        const g = await lean.stepGreedy(t, o);
        expect(g.token).toBe(argmax(a.logits));
        expect(maxStateDiff(a.state, g.state)).toBeLessThanOrEqual(TOL);
        [r, o] = [a.state, b.state];
      }
      expect(maxStateDiff(r, o)).toBeLessThanOrEqual(TOL);
      await lean.dispose();
    });
  }

  it("takes any engine's state (a reference state is packed on the way in), and gives the If path's answer", async () => {
    const model = tinyModel({ seed: 6 });
    const bytes = modelBytes(exportMambaOnnx(model.config, model.weights));
    const [lean, old] = [
      await createOnnxEngineNode(bytes, { stepPrepack: true }),
      await createOnnxEngineNode(bytes, { leanStep: false }),
    ];
    expect(old.leanStep).toBe(false);
    const ref = await model.engine.prefill(randomIds(9, model.config.vocabSize, 7));
    const [a, b] = [await lean.step(3, ref.state), await old.step(3, ref.state)];
    expect(maxAbsDiff(a.logits, b.logits)).toBeLessThanOrEqual(TOL);
    expect(maxStateDiff(a.state, b.state)).toBeLessThanOrEqual(TOL);
    await expect(lean.step(3, ref.state.slice(1))).rejects.toThrow(/state has 1 layers/);
    await expect(lean.step(model.config.vocabSize, ref.state)).rejects.toThrow(/outside/);
  });

  it('packs and unpacks the state losslessly; the view reads the packed buffer lazily', () => {
    const { config } = tinyModel();
    const state: ModelState = Array.from({ length: config.nLayer }, (_, l) => ({
      conv: Float32Array.from({ length: config.dInner * config.dConv }, (_, i) => l * 1000 + i),
      ssm: Float32Array.from({ length: config.dInner * config.dState }, (_, i) => -l * 1000 - i),
    }));
    const packed = packState(state, config);
    expect(knownPacked(state)).toBeUndefined();
    // Layer 1, conv tap k of channel ch sits at row k; h[n] of channel ch at row dConv + n.
    const rows = config.dConv + config.dState;
    expect(packed[rows * config.dInner + 2 * config.dInner + 3]).toBe(state[1].conv[3 * config.dConv + 2]);
    const view = unpackedView(packed, config);
    expect(knownPacked(view)).toBe(packed);
    expect(packState(view, config)).toBe(packed); // no copy on the way back in
    expect(maxStateDiff(view, state)).toBe(0);
  });

  it('multiplies by fp32 weights stored [in, out] (a one-row GEMM runs as a GEMV), except the tied head', () => {
    const model = tinyModel({ seed: 9 });
    const ex = exportMambaOnnx(model.config, model.weights, { decimationLayers: [] });
    const gemms = (bytes: Uint8Array) => {
      const graph = onnxProto.onnx.ModelProto.decode(bytes).graph!;
      const inits = new Map(graph.initializer!.map((t) => [t.name!, t.dims!.map(Number)]));
      const nodes = [graph, ...graph.node!.flatMap((n) => n.attribute!.flatMap((a) => (a.g ? [a.g] : [])))].flatMap(
        (gr) => gr.node!,
      );
      return nodes
        .filter((n) => n.opType === 'Gemm' && inits.has(n.input![1]!))
        .map((n) => ({
          b: n.input![1]!,
          dims: inits.get(n.input![1]!)!,
          transB: n.attribute!.find((a) => a.name === 'transB')?.i ?? 0,
        }));
    };
    const { dModel, dInner } = model.config;
    for (const file of ['mamba.onnx', STEP_FILE]) {
      const found = gemms(ex.files.get(file)!);
      expect(found.some((x) => x.b.includes('out_proj') && x.dims.join() === `${dInner},${dModel}`)).toBe(true);
      for (const x of found) expect(Number(x.transB), `${file}: ${x.b}`).toBe(x.b === 'embedding' ? 1 : 0);
    }
  });

  it('is written and read with the export folder; an export without it decodes through the If', async () => {
    const model = tinyModel({ seed: 8 });
    const dir = tempDir();
    await writeOnnxExport(dir, exportMambaOnnx(model.config, model.weights));
    const read = await readOnnxExport(dir);
    expect(read.step?.byteLength).toBeGreaterThan(0);
    const plain = exportMambaOnnx(model.config, model.weights, { leanStep: false });
    expect(plain.manifest.stepFile).toBeUndefined();
    expect([...plain.files.keys()]).not.toContain(STEP_FILE);
    expect((await createOnnxEngineNode(modelBytes(plain))).leanStep).toBe(false);
  });
});
