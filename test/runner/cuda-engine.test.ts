// The runner's CUDA path on the CPU emulator (mamba/cuda/emulator): `auto` picks CUDA when a driver answers, and a
// pass through generateBatch (batched prefill + batched decode, per-job DeciMamba and sampling, score jobs) returns
// what the reference engine returns job by job. Needs g++; skipped without it. On a GPU: runner/device-check.ts.
import { beforeAll, describe, expect, it } from 'vitest';
import { buildFakeCuda, haveCxx } from '../../mamba/cuda/emulator/build.ts';
import type { LoadedEngine } from '../../runner/pass/pass-types.ts';
import { jobRequestSchema } from '../../protocol/job-request.ts';
import type { PassContext, PassItem } from '../../runner/pass/pass-types.ts';
import { tempDir } from '../helpers.ts';

const MODEL = 'test/fixtures/tiny-random';
const CXX = haveCxx();
const schema = jobRequestSchema({ maxPromptChars: 100_000, maxNewTokens: 64 });
const text = 'In the beginning God created the heaven and the earth. And the earth was without form, and void. ';

function item(id: string, request: Record<string, unknown>): PassItem {
  return { id, request: schema.parse({ model: 'tiny-random', ...request }), createdAt: 1_700_000_000_000 };
}

describe.skipIf(!CXX)('runner on the CUDA engine (CPU emulator)', () => {
  let factory: typeof import('../../runner/engine/engine-factory.ts');
  let runPass: typeof import('../../runner/pass/pass.ts').runPass;
  let ctx: PassContext;
  beforeAll(async () => {
    Object.assign(process.env, buildFakeCuda().env, {
      DECISERVE_CUDA_CACHE: tempDir('deciserve-nvrtc-cache-'),
      FAKE_CUDA_TOTAL_MB: '2048',
    });
    factory = await import('../../runner/engine/engine-factory.ts');
    ({ runPass } = await import('../../runner/pass/pass.ts'));
    const { readModelDefaults } = await import('../../runner/model-defaults.ts');
    ctx = { modelId: 'tiny-random', model: await readModelDefaults(MODEL, 4) };
  }, 180_000);

  it('auto loads cuda (bf16) and cuda-fp32 runs a mixed pass exactly like the reference, job by job', async () => {
    const auto = await factory.loadEngine('auto', MODEL);
    expect(auto.kind).toBe('cuda');
    expect(auto.engine.name).toBe('cuda-bf16');
    expect(auto.engine.packsBatches).toBe(true);
    await auto.engine.dispose?.();

    const items = [
      item('a', { type: 'completion', prompt: text.repeat(3), max_tokens: 12 }),
      item('b', {
        type: 'completion',
        prompt: text.repeat(8),
        max_tokens: 9,
        decimation: 'on',
        decimation_params: { layers: [1, 2], beta: 0.5, l_base: 60, min_seq_len: 8 },
        protect: 5,
      }),
      item('c', { type: 'completion', prompt: 'And God said', max_tokens: 10, temperature: 0.9, top_k: 40, seed: 7 }),
      item('d', { type: 'completion', prompt: text, max_tokens: 8, stop: ['the'] }),
      item('e', { type: 'score', prompt: text.repeat(2), continuation: 'And God saw the light.' }),
      item('f', { type: 'completion', prompt: text, max_tokens: 5, top_p: 0.5, temperature: 1.2, seed: 3 }),
    ];
    const cuda: LoadedEngine = await factory.loadEngine('cuda-fp32', MODEL);
    const reference = await factory.loadEngine('reference', MODEL);
    try {
      const [got, want] = [await runPass(cuda, items, ctx), await runPass(reference, items, ctx)];
      expect(got.map((o) => o.ok)).toEqual(items.map(() => true));
      for (const [i, o] of got.entries()) {
        const w = want[i]!;
        if (!o.ok || !w.ok) throw new Error(`job ${items[i]!.id} failed`);
        expect(o.result.deciserve.engine).toBe('cuda-fp32');
        expect(o.result.deciserve.decimation).toEqual(w.result.deciserve.decimation);
        if (o.result.object === 'text_completion' && w.result.object === 'text_completion') {
          expect(o.result.choices).toEqual(w.result.choices);
          expect(o.result.usage).toEqual(w.result.usage);
        } else if (o.result.object === 'score' && w.result.object === 'score') {
          const want = w.result.logprobs;
          expect(o.result.tokens).toEqual(w.result.tokens);
          o.result.logprobs.forEach((lp, j) => expect(Math.abs(lp - want[j]!)).toBeLessThan(1e-4));
        } else throw new Error('result kinds differ');
      }
      expect(got[1]!.ok && got[1]!.stats.decimated && got[1]!.stats.keptTokens < got[1]!.stats.promptTokens).toBe(true);
    } finally {
      await cuda.engine.dispose?.();
    }
  }, 300_000);

  it('a job the GPU cannot run fails alone; the rest of the pass completes', async () => {
    const cuda = await factory.loadEngine('cuda-fp32', MODEL);
    try {
      const items = [
        item('ok', { type: 'completion', prompt: text, max_tokens: 4 }),
        item('bad', {
          type: 'completion',
          prompt: text,
          max_tokens: 4,
          decimation: 'on',
          decimation_params: { layers: [99], beta: 0.5, l_base: 10, min_seq_len: 4 },
        }),
      ];
      const [ok, bad] = await runPass(cuda, items, ctx);
      expect(ok!.ok).toBe(true);
      expect(bad!.ok).toBe(false);
      if (!bad!.ok) expect(bad!.retryable).toBe(false);
    } finally {
      await cuda.engine.dispose?.();
    }
  }, 120_000);
});
