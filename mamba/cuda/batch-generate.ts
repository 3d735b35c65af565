// Text generation for many prompts at once on the CUDA engine: one batched prefill (each prompt with its own DeciMamba
// settings), then one batched decode step per token for all still-running sequences. Per job it follows
// mamba/generate.ts exactly (same sampling stream per seed, stop strings, stop ids, the last token is never stepped),
// so a job's tokens match generate() on any engine. The runner's BatchEngine can wrap this.
import {
  findStop,
  type Detokenizer,
  type FinishReason,
  type GenerateOptions,
  type GenerateResult,
} from '../generate.ts';
import { createRng, type Rng } from '../rng.ts';
import { isGreedy, sampleToken } from '../sampling.ts';
import type { CudaEngine } from './engine.ts';

export interface BatchJob {
  ids: ArrayLike<number>;
  options?: GenerateOptions;
}

interface Running {
  job: number;
  options: GenerateOptions;
  rng: Rng;
  stops: string[];
  stopIds: Set<number>;
  tokens: number[];
  text: string;
  finish: FinishReason | null;
}

/** Generates for every job; a job that cannot run gets its Error in its slot. */
export async function generateBatch(
  engine: CudaEngine,
  tokenizer: Detokenizer | null,
  jobs: BatchJob[],
): Promise<Array<GenerateResult | Error>> {
  const t0 = performance.now();
  const prefills = await engine.prefillBatchSettled(
    jobs.map((j) => ({
      ids: j.ids,
      options: { decimation: j.options?.decimation ?? null, protect: j.options?.protect ?? 1, logitPositions: 'last' },
    })),
  );
  const t1 = performance.now();
  const results: Array<GenerateResult | Error | null> = prefills.map((p) => (p instanceof Error ? p : null));
  const running: Running[] = [];
  const logits: Float32Array[] = [];
  prefills.forEach((p, job) => {
    if (p instanceof Error) return;
    const options = jobs[job]!.options ?? {};
    const stops = options.stop ?? [];
    if (stops.length > 0 && !tokenizer) {
      results[job] = new Error('generate: stop strings need a tokenizer');
      return;
    }
    running.push({
      job,
      options,
      rng: createRng(options.seed ?? 0),
      stops,
      stopIds: new Set(options.stopTokenIds ?? (tokenizer?.eosId !== undefined ? [tokenizer.eosId] : [])),
      tokens: [],
      text: '',
      finish: null,
    });
    logits.push(p.logits[0]!);
  });

  if (running.length > 0) {
    const session = engine.openDecode(
      running.map((r) => (prefills[r.job] as Exclude<(typeof prefills)[number], Error>).state),
    );
    try {
      const vocab = engine.config.vocabSize;
      const allGreedy = running.every((r) => isGreedy(r.options));
      let current = logits;
      let greedyTokens: Int32Array | null = null;
      for (;;) {
        const next = new Array<number>(running.length).fill(0); // finished sequences step on a dummy token
        let anyStep = false;
        running.forEach((r, b) => {
          if (r.finish) return;
          const maxTokens = r.options.maxTokens ?? 64;
          if (r.tokens.length >= maxTokens) {
            r.finish = 'length';
            return;
          }
          const token = greedyTokens ? greedyTokens[b]! : sampleToken(current[b]!, r.options, r.rng);
          if (r.stopIds.has(token)) {
            r.finish = 'eos';
            return;
          }
          r.tokens.push(token);
          if (tokenizer) r.text = tokenizer.decode(r.tokens);
          r.options.onToken?.(token, r.text);
          const stopAt = findStop(r.text, r.stops);
          if (stopAt >= 0) {
            r.text = r.text.slice(0, stopAt);
            r.finish = 'stop';
            return;
          }
          if (r.tokens.length >= maxTokens) {
            r.finish = 'length'; // no step for a token we will not use
            return;
          }
          next[b] = token;
          anyStep = true;
        });
        if (!anyStep) break;
        const out = session.step(next, allGreedy ? { argmax: true } : { logits: true });
        if (allGreedy) greedyTokens = out.tokens!;
        else current = running.map((_, b) => out.logits!.subarray(b * vocab, (b + 1) * vocab));
      }
    } finally {
      session.dispose();
    }
  }
  const t2 = performance.now();
  for (const r of running) {
    const promptTokens = jobs[r.job]!.ids.length;
    const decodeSteps = Math.max(r.tokens.length - 1, 0);
    results[r.job] = {
      promptTokens,
      tokens: r.tokens,
      text: r.text,
      finishReason: r.finish ?? 'length',
      kept: (prefills[r.job] as Exclude<(typeof prefills)[number], Error>).kept,
      timings: {
        prefillMs: t1 - t0,
        decodeMs: t2 - t1,
        prefillTokensPerSecond: promptTokens / Math.max((t1 - t0) / 1000, 1e-9),
        decodeTokensPerSecond: decodeSteps / Math.max((t2 - t1) / 1000, 1e-9),
      },
    };
  }
  return results as Array<GenerateResult | Error>;
}
