// Sampling, generation and scoring on top of the engine interface.
import { describe, expect, it } from 'vitest';
import { EngineInputError, GREEDY_AHEAD, type ModelState, type PrefillOptions } from '../mamba/engine.ts';
import { sequentialEngine, type SingleSequenceParts } from '../mamba/engine-base.ts';
import { type GenerateOptions, generate, generateBatch, greedySteps } from '../mamba/generate.ts';
import { createRng } from '../mamba/rng.ts';
import { argmax, candidateDistribution, logProbOf, sampleToken } from '../mamba/sampling.ts';
import { scoreBatch, scoreSpan } from '../mamba/score.ts';
import { maxAbsDiff, randomIds, tinyModel } from './helpers.ts';

describe('sampling on hand-built logits', () => {
  it('greedy is argmax with ties to the lower id', () => {
    expect(argmax([0, 3, 1, 3])).toBe(1);
    expect(sampleToken([0, 3, 1, 3], { temperature: 0 }, createRng(1))).toBe(1);
    expect(sampleToken([0, 3, 1, 3], { temperature: 1, topK: 1 }, createRng(1))).toBe(1);
  });

  it('top-k keeps the k most likely tokens (ties to the lower id)', () => {
    const { ids, probs } = candidateDistribution([1, 3, 2, 3, 0], { temperature: 1, topK: 3 });
    expect(ids).toEqual([1, 3, 2]);
    expect(probs[0]).toBeCloseTo(probs[1]!, 12);
    expect(probs.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
  });

  it('top-p keeps the smallest most-likely set reaching p', () => {
    const logits = [0.5, 0.3, 0.15, 0.05].map(Math.log);
    expect(candidateDistribution(logits, { temperature: 1, topP: 0.5 }).ids).toEqual([0]);
    expect(candidateDistribution(logits, { temperature: 1, topP: 0.7 }).ids).toEqual([0, 1]);
    const { ids, probs } = candidateDistribution(logits, { temperature: 1, topP: 0.9 });
    expect(ids).toEqual([0, 1, 2]);
    expect(probs[0]).toBeCloseTo(0.5 / 0.95, 12);
    expect(candidateDistribution(logits, { temperature: 1, topP: 1 }).ids).toEqual([0, 1, 2, 3]);
    expect(candidateDistribution(logits, { temperature: 1, topP: 0 }).ids).toEqual([0]); // always at least one
  });

  it('temperature sharpens and flattens; draws follow the distribution and repeat with the seed', () => {
    const logits = [Math.log(0.6), Math.log(0.3), Math.log(0.1)];
    expect(candidateDistribution(logits, { temperature: 0.5 }).probs[0]).toBeCloseTo(0.36 / 0.46, 10);
    const draw = (seed: number, n: number) => {
      const rng = createRng(seed);
      return Array.from({ length: n }, () => sampleToken(logits, { temperature: 1 }, rng));
    };
    const draws = draw(5, 6000);
    const freq = [0, 1, 2].map((i) => draws.filter((d) => d === i).length / draws.length);
    expect(freq[0]).toBeCloseTo(0.6, 1);
    expect(freq[1]).toBeCloseTo(0.3, 1);
    expect(freq[2]).toBeCloseTo(0.1, 1);
    expect(draw(5, 50)).toEqual(draws.slice(0, 50));
    expect(draw(6, 50)).not.toEqual(draws.slice(0, 50));
    const topK = createRng(2);
    for (let i = 0; i < 200; i++) expect(sampleToken(logits, { temperature: 1, topK: 2 }, topK)).not.toBe(2);
  });

  it('log-probabilities are a stable log-softmax', () => {
    expect(logProbOf([1000, 1000], 0)).toBeCloseTo(Math.log(0.5), 12);
    expect(logProbOf([0, Math.log(3)], 1)).toBeCloseTo(Math.log(0.75), 12);
  });
});

/** An engine whose logits spell a fixed script (one token per position), to test generation's bookkeeping. */
class ScriptedEngine implements SingleSequenceParts {
  readonly name = 'scripted';
  readonly config = tinyModel().config;
  prefillOptions: PrefillOptions | undefined;
  constructor(private readonly script: number[]) {}
  private logitsFor(step: number): Float32Array {
    const l = new Float32Array(this.config.vocabSize);
    l[this.script[Math.min(step, this.script.length - 1)]!] = 10;
    return l;
  }
  async prefill(ids: ArrayLike<number>, options?: PrefillOptions) {
    this.prefillOptions = options;
    return {
      positions: [ids.length - 1],
      logits: [this.logitsFor(0)],
      state: [{ conv: new Float32Array([0]), ssm: new Float32Array(0) }],
      kept: [],
    };
  }
  async step(_token: number, state: ModelState) {
    const n = state[0]!.conv[0]! + 1;
    return { logits: this.logitsFor(n), state: [{ conv: new Float32Array([n]), ssm: new Float32Array(0) }] };
  }
}

const letters = {
  decode: (ids: ArrayLike<number>) => Array.from(ids, (i) => String.fromCharCode(96 + i)).join(''), // 1 -> 'a'
  encode: (text: string) => Array.from(text, (c) => c.charCodeAt(0) - 96),
  eosId: 0,
};

describe('generate', () => {
  it('stops at max_tokens, at a stop string (cut before it), and at eos', async () => {
    const script = [8, 5, 12, 12, 15, 0, 1]; // "hello", eos
    const long = await generate(sequentialEngine(new ScriptedEngine(script)), letters, [1, 2], { maxTokens: 3 });
    expect(long).toMatchObject({ tokens: [8, 5, 12], text: 'hel', finishReason: 'length', promptTokens: 2 });
    const stopped = await generate(sequentialEngine(new ScriptedEngine(script)), letters, [1], {
      maxTokens: 10,
      stop: ['zz', 'll'],
    });
    expect(stopped).toMatchObject({ text: 'he', finishReason: 'stop', tokens: [8, 5, 12, 12] });
    const eos = await generate(sequentialEngine(new ScriptedEngine(script)), letters, [1], { maxTokens: 10 });
    expect(eos).toMatchObject({ text: 'hello', finishReason: 'eos', tokens: [8, 5, 12, 12, 15] });
    const noEos = await generate(sequentialEngine(new ScriptedEngine(script)), letters, 'ab', {
      maxTokens: 7,
      stopTokenIds: [],
    });
    expect(noEos).toMatchObject({ finishReason: 'length', tokens: [8, 5, 12, 12, 15, 0, 1] });
  });

  // an engine whose sessions take several greedy steps a call (as the CUDA engine's do): the same tokens and stops,
  // with at most GREEDY_AHEAD − 1 steps past the last token used
  it('stops the same way when the session takes greedy steps ahead (stepGreedy)', async () => {
    const script = [8, 5, 12, 12, 15, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const ahead = () => {
      const engine = sequentialEngine(new ScriptedEngine(script));
      const counts = { steps: 0, calls: 0 };
      const open = engine.openDecode.bind(engine);
      engine.openDecode = (states) => {
        const session = open(states);
        const step = session.step.bind(session);
        session.step = (tokens, want) => {
          counts.steps++;
          return step(tokens, want);
        };
        session.stepGreedy = (tokens, n) => {
          counts.calls++;
          const oneAtATime = { batch: session.batch, step: session.step, state: session.state, dispose() {} };
          return greedySteps(oneAtATime, tokens, n);
        };
        return session;
      };
      return { engine, counts };
    };
    const cases: Array<[ArrayLike<number> | string, GenerateOptions]> = [
      [[1, 2], { maxTokens: 3 }],
      [[1], { maxTokens: 10, stop: ['zz', 'll'] }],
      [[1], { maxTokens: 10 }],
      [[1], { maxTokens: 14, stopTokenIds: [] }],
    ];
    for (const [prompt, options] of cases) {
      const plain = await generate(sequentialEngine(new ScriptedEngine(script)), letters, prompt, options);
      const { engine, counts } = ahead();
      const got = await generate(engine, letters, prompt, options);
      expect([got.tokens, got.text, got.finishReason]).toEqual([plain.tokens, plain.text, plain.finishReason]);
      expect(counts.calls).toBeGreaterThan(0);
      expect(counts.steps).toBeLessThanOrEqual(got.tokens.length + GREEDY_AHEAD);
    }
  });

  it('passes decimation and protect to the prefill', async () => {
    const engine = new ScriptedEngine([3]);
    const decimation = { layers: [1], beta: 0.5, lBase: 10, minSeqLen: 2 };
    await generate(sequentialEngine(engine), letters, [1, 2, 3], { maxTokens: 1, decimation, protect: 2 });
    expect(engine.prefillOptions).toEqual({ decimation, protect: 2, logitPositions: 'last' });
  });

  it('is deterministic for a seed on a real (tiny) model, and greedy matches prefill + argmax steps', async () => {
    const { engine, config } = tinyModel({ seed: 3 });
    const prompt = randomIds(8, config.vocabSize, 2);
    const opts = { maxTokens: 12, temperature: 1.0, topP: 0.95, stopTokenIds: [] };
    const a = await generate(engine, null, prompt, { ...opts, seed: 1 });
    const b = await generate(engine, null, prompt, { ...opts, seed: 1 });
    const c = await generate(engine, null, prompt, { ...opts, seed: 2 });
    expect(a.tokens).toEqual(b.tokens);
    expect(a.tokens).not.toEqual(c.tokens);
    expect(a.timings.prefillTokensPerSecond).toBeGreaterThan(0);

    const decimation = { layers: [1], beta: 0.5, lBase: 3, minSeqLen: 1 };
    const greedy = await generate(engine, null, prompt, { maxTokens: 5, stopTokenIds: [], decimation, protect: 2 });
    expect(greedy.kept[0]!.indices).toHaveLength(5);
    const pre = await engine.prefill(prompt, { decimation, protect: 2 });
    let { state } = pre;
    let logits = pre.logits[0]!;
    const manual: number[] = [];
    for (let i = 0; i < 5; i++) {
      manual.push(argmax(logits));
      ({ logits, state } = await engine.step(manual[i]!, state));
    }
    expect(greedy.tokens).toEqual(manual);
  });

  it('generateBatch gives every job what generate() gives it alone; a bad job fails in its slot only', async () => {
    const { engine, config } = tinyModel({ nLayer: 3, seed: 5 });
    const decimation = { layers: [1], beta: 0.5, lBase: 6, minSeqLen: 2 };
    const jobs = [
      { ids: randomIds(12, config.vocabSize, 1), options: { maxTokens: 7, stopTokenIds: [] } },
      { ids: randomIds(30, config.vocabSize, 2), options: { maxTokens: 2, decimation, protect: 3, stopTokenIds: [] } },
      { ids: [config.vocabSize], options: {} },
      { ids: randomIds(9, config.vocabSize, 3), options: { maxTokens: 5, temperature: 1, topP: 0.9, seed: 4 } },
      { ids: randomIds(9, config.vocabSize, 3), options: { maxTokens: 0 } },
    ];
    const got = await generateBatch(engine, null, jobs);
    expect(got[2]).toBeInstanceOf(EngineInputError);
    for (const i of [0, 1, 3, 4]) {
      const alone = await generate(engine, null, jobs[i]!.ids, jobs[i]!.options);
      const g = got[i] as typeof alone;
      expect([g.tokens, g.finishReason], `job ${i}`).toEqual([alone.tokens, alone.finishReason]);
      expect(g.kept.map((k) => Array.from(k.indices))).toEqual(alone.kept.map((k) => Array.from(k.indices)));
    }
    expect((got[0] as { tokens: number[] }).tokens).toHaveLength(7); // kept stepping after job 1 finished
    expect((got[4] as { tokens: number[] }).tokens).toEqual([]);
  });
});

describe('scoreSpan', () => {
  it('gives log p(ids[t] | ids[<t]) over [start, end) and the perplexity', async () => {
    const { engine, config } = tinyModel({ seed: 7 });
    const ids = randomIds(20, config.vocabSize, 9);
    const all = await engine.prefill(ids, { logitPositions: 'all' });
    const r = await scoreSpan(engine, ids, { start: 5, end: 15 });
    expect(r.tokens).toEqual(ids.slice(5, 15));
    r.logprobs.forEach((lp, j) => expect(lp).toBeCloseTo(logProbOf(all.logits[4 + j]!, ids[5 + j]!), 10));
    expect(r.perplexity).toBeCloseTo(Math.exp(-r.logprobs.reduce((a, b) => a + b, 0) / 10), 10);
    const whole = await scoreSpan(engine, ids);
    expect(whole.tokens).toHaveLength(19);
    await expect(scoreSpan(engine, ids, { start: 0 })).rejects.toThrow(/span/);
  });

  it('scoreBatch scores every job as scoreSpan does alone; a bad span fails in its slot only', async () => {
    const { engine, config } = tinyModel({ nLayer: 3, seed: 7 });
    const decimation = { layers: [1], beta: 0.5, lBase: 10, minSeqLen: 2 };
    const jobs = [
      { ids: randomIds(20, config.vocabSize, 9), options: { start: 5, end: 15 } },
      { ids: randomIds(20, config.vocabSize, 9), options: { start: 0 } },
      { ids: randomIds(60, config.vocabSize, 10), options: { start: 50, end: 58, decimation } },
    ];
    const got = await scoreBatch(engine, jobs);
    expect(got[1]).toBeInstanceOf(RangeError);
    for (const i of [0, 2]) {
      const alone = await scoreSpan(engine, jobs[i]!.ids, jobs[i]!.options);
      expect(got[i]).toEqual(alone);
    }
  });

  it('with decimation, protects the scored span + 1 and only decimates the context before it', async () => {
    const { engine, config } = tinyModel({ nLayer: 3, seed: 7 });
    const ids = randomIds(60, config.vocabSize, 10);
    const decimation = { layers: [1], beta: 0.5, lBase: 10, minSeqLen: 2 };
    const r = await scoreSpan(engine, ids, { start: 50, end: 58, decimation });
    const kept = Array.from(r.kept[0]!.indices);
    expect(kept).toHaveLength(10 + 9);
    expect(kept.slice(-9)).toEqual([49, 50, 51, 52, 53, 54, 55, 56, 57]);
    const plain = await scoreSpan(engine, ids, { start: 50, end: 58 });
    expect(maxAbsDiff(r.logprobs, plain.logprobs)).toBeGreaterThan(0);
    const noOp = await scoreSpan(engine, ids, { start: 50, end: 58, decimation: { ...decimation, lBase: 1000 } });
    expect(maxAbsDiff(noOp.logprobs, plain.logprobs)).toBeLessThan(1e-9);
  });
});
