// The ONNX engine against the PyTorch golden fixtures: every case replayed on a fresh fp32 export of its checkpoint,
// with the same check and tolerances as the reference (test/golden-fixtures.ts). No fixtures -> no cases.
import { describe, expect, it } from 'vitest';
import { loadModel } from '../mamba/checkpoint.ts';
import type { OnnxEngine } from '../mamba/onnx/engine.ts';
import { exportMambaOnnx, modelBytes } from '../mamba/onnx/export/export-model.ts';
import { createOnnxEngineNode } from '../mamba/onnx/node.ts';
import { discoverFixtures, expectGoldenParity } from './golden-fixtures.ts';

const fixtures = discoverFixtures();

const engines = new Map<string, Promise<OnnxEngine>>();
function engineFor(dir: string): Promise<OnnxEngine> {
  if (!engines.has(dir)) {
    engines.set(
      dir,
      loadModel(dir).then(({ config, weights }) => createOnnxEngineNode(modelBytes(exportMambaOnnx(config, weights)))),
    );
  }
  return engines.get(dir)!;
}

describe('ONNX engine vs the PyTorch golden fixtures', () => {
  for (const fixture of fixtures) {
    for (const c of fixture.cases) {
      it(`${fixture.name}/${c.name}: logits, kept indices, states, greedy tokens`, async () => {
        await expectGoldenParity(await engineFor(fixture.checkpointDir), fixture, c);
      }, 300_000);
    }
  }

  it(`found the fixtures (${fixtures.length})`, () => {
    expect(fixtures.length).toBeGreaterThan(0);
  });
});
