// Runs inside workerd: the harness Worker loads the exported model from its assets binding into onnxruntime-web and
// generates; the plain-TS reference engine, built in the same isolate from the checkpoint's safetensors, checks it.
import { env, exports } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../mamba/config.ts';
import type { DecimationConfig } from '../../mamba/engine.ts';
import { generate } from '../../mamba/generate.ts';
import { ReferenceEngine } from '../../mamba/reference/index.ts';
import { readSafetensors } from '../../mamba/safetensors.ts';
import { weightsFromSafetensors } from '../../mamba/weights.ts';

async function reference(): Promise<ReferenceEngine> {
  const config = parseConfig(await (await env.MODEL.fetch('https://model/config.json')).json());
  const bytes = new Uint8Array(await (await env.MODEL.fetch('https://model/model.safetensors')).arrayBuffer());
  return new ReferenceEngine(config, weightsFromSafetensors(config, readSafetensors(bytes)));
}

async function post(path: string, body: unknown): Promise<Record<string, unknown>> {
  const response = await exports.default.fetch(`https://harness${path}`, {
    method: 'POST',
    body: JSON.stringify(body),
  });
  const data = (await response.json()) as Record<string, unknown>;
  expect(response.status, JSON.stringify(data)).toBe(200);
  return data;
}

const ids = Array.from({ length: 60 }, (_, i) => (i * 31 + 7) % 256);
const decimation: DecimationConfig = { layers: [1], beta: 0.5, lBase: 20, minSeqLen: 4 };

describe('ONNX engine in workerd', () => {
  it('loads the model from the assets binding and generates the reference greedy tokens', async () => {
    const ref = await reference();
    const expected = await generate(ref, null, ids, { maxTokens: 12 });
    const got = await post('/generate', { ids, maxTokens: 12 });
    expect(got.tokens).toEqual(expected.tokens);
    expect(got.wasmMemoryBytes as number).toBeGreaterThan(0);
  });

  it('decimates in the graph: same kept indices, logits within 1e-4', async () => {
    const ref = await reference();
    const options = { decimation, protect: 4, logitPositions: [57, 59] };
    const expected = await ref.prefill(ids, options);
    const got = (await post('/prefill', { ids, options })) as {
      logits: number[][];
      kept: { layer: number; indices: number[] }[];
      serverMs: number;
    };
    // The benchmarks' in-Worker clock (bench/onnx-workerd.ts reads it as the engine's prefill time).
    expect(Number.isFinite(got.serverMs) && got.serverMs >= 0).toBe(true);
    expect(got.kept).toEqual(expected.kept.map((k) => ({ layer: k.layer, indices: Array.from(k.indices) })));
    expected.logits.forEach((row, r) => {
      let diff = 0;
      row.forEach((v, i) => (diff = Math.max(diff, Math.abs(v - got.logits[r]![i]!))));
      expect(diff).toBeLessThanOrEqual(1e-4);
    });
    const generated = await post('/generate', { ids, maxTokens: 8, decimation, protect: 4 });
    expect(generated.tokens).toEqual((await generate(ref, null, ids, { maxTokens: 8, decimation, protect: 4 })).tokens);
  });

  it('reuses the session across requests and reports bad input as an error', async () => {
    const first = await exports.default.fetch('https://harness/health');
    const second = await exports.default.fetch('https://harness/health');
    expect(((await first.json()) as { coldStartMs: number }).coldStartMs).toBe(
      ((await second.json()) as { coldStartMs: number }).coldStartMs,
    );
    const bad = await exports.default.fetch('https://harness/generate', {
      method: 'POST',
      body: JSON.stringify({ ids: [1, 99999] }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/token id 99999 at position 1/);
  });
});
