// The runner's engine seam: the CPU engine it uses without a GPU (ONNX) must compute what the reference computes,
// and `auto` must pick it when no GPU answers. The CUDA side is test/runner/cuda-engine.test.ts (CPU emulator).
import { describe, expect, it } from 'vitest';
import { loadEngine } from '../../runner/engine/engine-factory.ts';
import { maxAbsDiff } from '../helpers.ts';

const MODEL = 'test/fixtures/tiny-random';
const DECIMATION = { layers: [1, 2], beta: 0.5, lBase: 40, minSeqLen: 8 };

describe('runner engines', () => {
  it('onnx matches reference on plain and decimated prefills; without a GPU, auto loads onnx and cuda is refused', async () => {
    const [reference, onnx] = [await loadEngine('reference', MODEL), await loadEngine('onnx', MODEL)];
    const ids = reference.tokenizer.encode('In the beginning God created the heaven and the earth. '.repeat(6));
    for (const decimation of [null, DECIMATION]) {
      const options = { decimation, protect: 4, logitPositions: 'last' as const };
      const [a, b] = [await reference.engine.prefill(ids, options), await onnx.engine.prefill(ids, options)];
      expect(maxAbsDiff(a.logits[0]!, b.logits[0]!)).toBeLessThan(1e-4);
      expect(b.kept.map((k) => Array.from(k.indices))).toEqual(a.kept.map((k) => Array.from(k.indices)));
      if (decimation) expect(a.kept[0]!.indices.length).toBeLessThan(ids.length);
    }
    await onnx.engine.dispose?.();
    const auto = await loadEngine('auto', MODEL);
    expect(auto.kind).toBe('onnx');
    expect(auto.engine.packsBatches).toBe(false);
    await auto.engine.dispose?.();
    await expect(loadEngine('cuda', MODEL)).rejects.toThrow(/engine "cuda" cannot use GPU 0/);
  });
});
