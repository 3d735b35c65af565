// Where a request runs (worker/routing.ts): the boundaries of the token limits and of the CPU budget, with the
// estimate's prefill and decode parts. Pure logic on a hand-built model description.
import { describe, expect, it } from 'vitest';
import edgeBench from '../../bench/results/edge-bench.json' with { type: 'json' };
import edgeBenchOnnx from '../../bench/results/edge-bench-onnx.json' with { type: 'json' };
import { edgeConfig, MEASURED_EDGE_THROUGHPUT } from '../../worker/config.ts';
import type { EdgeModel } from '../../worker/model/edge-model.ts';
import { edgeMaxPromptTokens, estimateEdgeMs, place } from '../../worker/routing.ts';

const KEY = 'k'.repeat(16);
const model = (trainLen = 2048, maxSeqLen = 4096) =>
  ({ defaults: { trainLen }, manifest: { maxSeqLen } }) as unknown as EdgeModel;
// 1000 prefill, 500 scoring and 100 decode tok/s: 1 ms per prompt token, 2 ms per scored token, 10 ms per new token.
const config = (env: Record<string, string> = {}) =>
  edgeConfig({
    API_KEYS: KEY,
    EDGE_PREFILL_TOKENS_PER_S: '1000',
    EDGE_SCORE_TOKENS_PER_S: '500',
    EDGE_DECODE_TOKENS_PER_S: '100',
    EDGE_CPU_BUDGET_MS: '10000',
    ...env,
  });

describe('routing defaults', () => {
  it("the throughput defaults are the engine's workerd measurement committed in bench/results/edge-bench*.json", () => {
    for (const [engine, bench] of [
      ['wasm-fp32', edgeBench],
      ['wasm-int8', edgeBench],
      ['onnx', edgeBenchOnnx],
    ] as const) {
      const workerd = bench.edge.find((e) => e.runtime.startsWith('workerd'))!;
      const c = edgeConfig({ API_KEYS: KEY, EDGE_ENGINE: engine });
      expect(c.edge.prefillTokensPerS, engine).toBe(workerd.throughput.prefillTokensPerS);
      expect(c.edge.decodeTokensPerS, engine).toBe(workerd.throughput.decodeTokensPerS);
      expect(MEASURED_EDGE_THROUGHPUT[engine].command).toMatch(/bench\/edge-bench\.ts/);
    }
    expect(edgeBenchOnnx.command).toContain('--engine onnx');
    // The engines differ: a shared figure would send ORT requests past its CPU budget.
    expect(edgeConfig({ API_KEYS: KEY }).edge.decodeTokensPerS).toBeGreaterThan(
      edgeConfig({ API_KEYS: KEY, EDGE_ENGINE: 'onnx' }).edge.decodeTokensPerS,
    );
  });

  it('the renamed EDGE_DECODE is a configuration error, not a silent default', () => {
    expect(() => edgeConfig({ API_KEYS: KEY, EDGE_DECODE: 'onnx' })).toThrow(/EDGE_DECODE was renamed EDGE_ENGINE/);
  });
});

describe('the CPU estimate', () => {
  it('counts the prefill, the scored tokens (at the scoring rate) and the decode', () => {
    const c = config();
    expect(estimateEdgeMs(c, { promptTokens: 2000, newTokens: 0 })).toBe(2000);
    expect(estimateEdgeMs(c, { promptTokens: 0, newTokens: 30 })).toBe(300);
    expect(estimateEdgeMs(c, { promptTokens: 2000, newTokens: 30 })).toBe(2300);
    expect(estimateEdgeMs(c, { promptTokens: 2000, newTokens: 30, scoredTokens: 2000 })).toBe(6300); // echo + logprobs
    expect(estimateEdgeMs(c, { promptTokens: 2000, newTokens: 0, prefilledTokens: 0, scoredTokens: 2000 })).toBe(4000); // /v1/score
    expect(estimateEdgeMs(c, { promptTokens: 1, newTokens: 0 })).toBe(1); // rounded to whole ms
    expect(estimateEdgeMs(config({ EDGE_PREFILL_TOKENS_PER_S: '3000' }), { promptTokens: 1, newTokens: 0 })).toBe(0);
  });
});

describe('placement', () => {
  it('a prompt of exactly the training length (2,048 tokens) runs at the edge; one token more goes to the runner', () => {
    const c = config();
    expect(place(c, model(), { promptTokens: 2048, newTokens: 1 })).toEqual({
      where: 'edge',
      estimatedMs: 2058,
      reason: '2048 prompt tokens, estimated 2058 ms CPU',
    });
    expect(place(c, model(), { promptTokens: 2049, newTokens: 1 })).toEqual({
      where: 'runner',
      estimatedMs: 2059,
      reason: '2049 prompt tokens > 2048 at the edge',
    });
  });

  it("the limit is the smallest of EDGE_MAX_PROMPT_TOKENS, the training length and the export's maxSeqLen", () => {
    expect(edgeMaxPromptTokens(config(), model(2048, 4096))).toBe(2048);
    expect(edgeMaxPromptTokens(config(), model(8192, 4096))).toBe(4096);
    expect(edgeMaxPromptTokens(config({ EDGE_MAX_PROMPT_TOKENS: '512' }), model())).toBe(512);
    expect(edgeMaxPromptTokens(config({ EDGE_MAX_PROMPT_TOKENS: '9000' }), model())).toBe(2048);
    expect(edgeMaxPromptTokens(config({ EDGE_MAX_DECIMATION_TOKENS: '1024' }), model(), true)).toBe(1024);
    expect(edgeMaxPromptTokens(config({ EDGE_MAX_DECIMATION_TOKENS: '4000' }), model(), true)).toBe(2048);
    expect(edgeMaxPromptTokens(config({ EDGE_MAX_DECIMATION_TOKENS: '1024' }), model(), false)).toBe(2048);
    // Defaults: the training length on the WASM engine (its activations are [L, d_model]: ≤100 MB at 8,192,
    // bench/results/edge-memory-workerd.md), 1,024 on ORT (its heap grows with L).
    expect(edgeMaxPromptTokens(config(), model(4096, 8192), true)).toBe(4096);
    expect(edgeMaxPromptTokens(config(), model(8192, 8192), true)).toBe(8192);
    expect(edgeMaxPromptTokens(config({ EDGE_ENGINE: 'onnx' }), model(4096, 8192), true)).toBe(1024);
  });

  it('with DeciMamba on, the edge takes at most EDGE_MAX_DECIMATION_TOKENS (inclusive)', () => {
    const c = config({ EDGE_MAX_DECIMATION_TOKENS: '1024' });
    expect(place(c, model(), { promptTokens: 1024, newTokens: 0, decimated: true }).where).toBe('edge');
    expect(place(c, model(), { promptTokens: 1025, newTokens: 0, decimated: true })).toEqual({
      where: 'runner',
      estimatedMs: 1025,
      reason: '1025 prompt tokens > 1024 with DeciMamba at the edge',
    });
    expect(place(c, model(), { promptTokens: 1025, newTokens: 0, decimated: false }).where).toBe('edge');
  });

  it('an estimate exactly at the CPU budget runs at the edge; 1 ms over goes to the runner, prefill and decode both counting', () => {
    const c = config({ EDGE_CPU_BUDGET_MS: '2000' });
    expect(place(c, model(), { promptTokens: 1500, newTokens: 50 }).where).toBe('edge'); // 1500 + 500 = 2000 ms
    expect(place(c, model(), { promptTokens: 1501, newTokens: 50 })).toEqual({
      where: 'runner',
      estimatedMs: 2001,
      reason: 'estimated 2001 ms CPU > edge budget 2000 ms',
    });
    expect(place(c, model(), { promptTokens: 1500, newTokens: 51 }).where).toBe('runner'); // decode counts
    expect(place(c, model(), { promptTokens: 666, newTokens: 0, scoredTokens: 666 }).where).toBe('edge'); // 666 + 1332 ms
    expect(place(c, model(), { promptTokens: 667, newTokens: 0, scoredTokens: 667 }).where).toBe('runner'); // echo's scoring pass counts
    expect(place(c, model(), { promptTokens: 2001, newTokens: 0 }).where).toBe('runner'); // prefill alone can exceed it
  });
});
