// The ONNX engine against the PyTorch golden fixtures (test/fixtures/<name>/, format in mamba/README.md). The fixture
// format itself is validated by golden.test.ts; here every case is replayed on a fresh fp32 export of its checkpoint.
// No fixtures -> no cases.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../mamba/checkpoint.ts';
import type { DecimationConfig } from '../mamba/engine.ts';
import type { OnnxEngine } from '../mamba/onnx/engine.ts';
import { exportMambaOnnx, modelBytes } from '../mamba/onnx/export/export-model.ts';
import { createOnnxEngineNode } from '../mamba/onnx/node.ts';
import { readSafetensors } from '../mamba/safetensors.ts';
import { argmax } from '../mamba/sampling.ts';
import { maxAbsDiff } from './helpers.ts';

const ROOT = resolve(import.meta.dirname, '..');
const FIXTURES = join(ROOT, 'test', 'fixtures');
// Same tolerances as the reference's golden test: fp32 PyTorch (CUDA/Triton scan) vs fp32 WASM.
const LOGIT_TOL = 1e-3;
const STATE_TOL = 1e-3;

interface GoldenCase {
  name: string;
  ids: number[];
  protect: number;
  decimation: DecimationConfig | null;
  positions: number[];
  kept: { layer: number; indices: number[] }[];
  greedy: number[];
}

const fixtures = existsSync(FIXTURES)
  ? readdirSync(FIXTURES)
      .filter((d) => statSync(join(FIXTURES, d)).isDirectory() && existsSync(join(FIXTURES, d, 'golden.json')))
      .sort()
      .map((name) => {
        const golden = JSON.parse(readFileSync(join(FIXTURES, name, 'golden.json'), 'utf8')) as { checkpoint: string; cases: GoldenCase[] };
        return { name, checkpoint: resolve(ROOT, golden.checkpoint), cases: golden.cases, tensorsPath: join(FIXTURES, name, 'golden.safetensors') };
      })
  : [];

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
  it(`finds the fixtures (${fixtures.length})`, () => {
    for (const f of fixtures) expect(existsSync(f.tensorsPath), `${f.name}/golden.safetensors`).toBe(true);
  });

  for (const fixture of fixtures) {
    for (const c of fixture.cases) {
      it(`${fixture.name}/${c.name}: logits, kept indices, states, greedy tokens`, async () => {
        const engine = await engineFor(fixture.checkpoint);
        const tensors = readSafetensors(readFileSync(fixture.tensorsPath));
        const { vocabSize, nLayer } = engine.config;
        const last = c.ids.length - 1;
        const positions = c.positions.includes(last) ? c.positions : [...c.positions, last];
        const result = await engine.prefill(c.ids, { decimation: c.decimation, protect: c.protect, logitPositions: positions });

        const golden = tensors.getF32(`${c.name}.logits`);
        c.positions.forEach((p, row) => {
          const diff = maxAbsDiff(result.logits[row]!, golden.subarray(row * vocabSize, (row + 1) * vocabSize));
          expect(diff, `max |Δlogit| at position ${p}`).toBeLessThanOrEqual(LOGIT_TOL);
        });
        expect(result.kept.map((k) => ({ layer: k.layer, indices: Array.from(k.indices) }))).toEqual(c.kept);
        for (let i = 0; i < nLayer; i++) {
          expect(maxAbsDiff(result.state[i]!.conv, tensors.getF32(`${c.name}.conv.${i}`)), `conv state ${i}`).toBeLessThanOrEqual(STATE_TOL);
          expect(maxAbsDiff(result.state[i]!.ssm, tensors.getF32(`${c.name}.ssm.${i}`)), `ssm state ${i}`).toBeLessThanOrEqual(STATE_TOL);
        }

        const greedy: number[] = [];
        let logits = result.logits[positions.indexOf(last)]!;
        let state = result.state;
        while (greedy.length < c.greedy.length) {
          greedy.push(argmax(logits));
          if (greedy.length < c.greedy.length) ({ logits, state } = await engine.step(greedy[greedy.length - 1]!, state));
        }
        expect(greedy).toEqual(c.greedy);
      }, 300_000);
    }
  }
});
