// Running a completion or a score in the Worker on the ONNX engine. Jobs are prepared by the runner's own
// prepareJob (protocol/prepare-job.ts): same tokenization, decimation and sampling options, so a request gives the same
// answer at the edge as on the runner (for the same engine numerics and seed).
import { generate, type GenerateResult } from '../mamba/generate.ts';
import { logProbOf } from '../mamba/sampling.ts';
import { scoreSpan } from '../mamba/score.ts';
import type { JobRequest } from '../protocol/job-request.ts';
import { prepareJob, type PreparedJob } from '../protocol/prepare-job.ts';
import { decimationReport, type CompletionResult, type ScoreJobResult } from '../protocol/results.ts';
import { ObservedEngine } from './edge-engine.ts';
import { badRequest } from './http/errors.ts';
import type { EdgeModel } from './model/edge-model.ts';

export interface Logprobs {
  tokens: string[];
  token_logprobs: Array<number | null>;
  top_logprobs: Array<Record<string, number> | null>;
  text_offset: number[];
}

export type EdgeCompletion = Omit<CompletionResult, 'choices' | 'deciserve'> & {
  choices: Array<{ index: 0; text: string; finish_reason: 'stop' | 'length'; logprobs: Logprobs | null }>;
  deciserve: CompletionResult['deciserve'] & { ran_on: 'edge' };
};

export type EdgeScore = ScoreJobResult & {
  token_strings: string[];
  deciserve: ScoreJobResult['deciserve'] & { ran_on: 'edge' };
};

export interface EdgeTimings {
  loadMs: number;
  prefillMs: number;
  decodeMs: number;
}

interface RunContext {
  model: EdgeModel;
  modelId: string;
  id: string;
  signal?: AbortSignal;
}

async function prepared(ctx: RunContext, request: JobRequest) {
  const t0 = performance.now();
  const { engine } = await ctx.model.engine();
  const loadMs = performance.now() - t0; // the first request in an isolate pays the model load

  let job: PreparedJob;
  try {
    job = prepareJob(ctx.model.tokenizer, { id: ctx.id, request }, ctx.model.defaults);
  } catch (err) {
    throw badRequest('invalid_value', (err as Error).message, 'prompt');
  }
  const missing = job.decimation?.layers.filter((l) => !ctx.model.manifest.decimationLayers.includes(l)) ?? [];
  if (missing.length > 0) {
    throw badRequest(
      'invalid_decimation',
      `the edge model cannot decimate at layers [${missing}]`,
      'decimation_params.layers',
    );
  }
  return { job, engine: new ObservedEngine(engine, ctx.signal), loadMs };
}

/** Top-n log-probabilities of `logits` as {token text: logprob}. */
function topLogprobs(logits: Float32Array, n: number, decode: (id: number) => string): Record<string, number> {
  const order = Array.from(logits.keys())
    .sort((a, b) => logits[b]! - logits[a]!)
    .slice(0, n);
  return Object.fromEntries(order.map((id) => [decode(id), logProbOf(logits, id)]));
}

/**
 * Streams text as it is generated, holding back what could still turn out to be the start of a stop string or an
 * incomplete UTF-8 character, so the streamed text is always a prefix of the final (stop-trimmed) text.
 */
class StopSafeStream {
  private emitted = '';
  private readonly holdback: number;

  constructor(
    private readonly stops: string[],
    private readonly onText: (delta: string) => void,
  ) {
    this.holdback = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /** `text` may already hold a whole stop string (generate() checks for it after this call). */
  update(text: string): void {
    let end = text.length - this.holdback;
    for (const stop of this.stops) {
      const at = stop === '' ? -1 : text.indexOf(stop);
      if (at >= 0) end = Math.min(end, at);
    }
    let safe = text.slice(0, Math.max(0, end));
    while (safe.endsWith('\uFFFD')) safe = safe.slice(0, -1);
    this.emit(safe);
  }

  finish(text: string): void {
    this.emit(text);
  }

  private emit(text: string): void {
    if (text.length > this.emitted.length && text.startsWith(this.emitted)) {
      this.onText(text.slice(this.emitted.length));
      this.emitted = text;
    }
  }
}

export interface CompletionOptions {
  echo: boolean;
  /** Top-n alternatives per token; null = no logprobs. */
  logprobs: number | null;
  /** Streaming: receives the text piece by piece (the prompt first when echoing). */
  onText?: (delta: string) => void;
}

export async function completeAtEdge(
  ctx: RunContext,
  request: JobRequest & { type: 'completion'; seed: number },
  options: CompletionOptions,
): Promise<{ result: EdgeCompletion; timings: EdgeTimings }> {
  const { job, engine, loadMs } = await prepared(ctx, request);
  if (job.kind !== 'completion') throw new Error('expected a completion job');
  const tokenizer = ctx.model.tokenizer;
  const decodeOne = (id: number) => tokenizer.decode([id]);

  const stream = options.onText ? new StopSafeStream(job.options.stop ?? [], options.onText) : null;
  if (options.echo) options.onText?.(request.prompt);
  const sampled: { token: number; logprob: number; top: Record<string, number> | null }[] = [];
  const out: GenerateResult = await generate(engine, tokenizer, job.ids, {
    ...job.options,
    onToken: (token, text) => {
      if (options.logprobs !== null && engine.lastLogits) {
        const logits = engine.lastLogits;
        sampled.push({
          token,
          logprob: logProbOf(logits, token),
          top: options.logprobs > 0 ? topLogprobs(logits, options.logprobs, decodeOne) : null,
        });
      }
      stream?.update(text);
    },
  });
  stream?.finish(out.text);

  let logprobs: Logprobs | null = null;
  let extraPrefillMs = 0;
  if (options.logprobs !== null) {
    logprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    let offset = 0;
    const push = (id: number, logprob: number | null, top: Record<string, number> | null) => {
      const piece = decodeOne(id);
      logprobs!.tokens.push(piece);
      logprobs!.token_logprobs.push(logprob);
      logprobs!.top_logprobs.push(top);
      logprobs!.text_offset.push(offset);
      offset += piece.length;
    };
    if (options.echo) {
      // The prompt's own log-probabilities: one more prefill (the first token has no prediction).
      const t0 = performance.now();
      const scored = job.ids.length > 1 ? await scoreSpan(engine, job.ids, { start: 1 }) : null;
      extraPrefillMs = performance.now() - t0;
      job.ids.forEach((id, i) => push(id, i === 0 ? null : scored!.logprobs[i - 1]!, null));
    }
    sampled.forEach((s) => push(s.token, s.logprob, s.top));
  }

  const text = (options.echo ? request.prompt : '') + out.text;
  const result: EdgeCompletion = {
    id: ctx.id,
    object: 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model: ctx.modelId,
    choices: [{ index: 0, text, finish_reason: out.finishReason === 'length' ? 'length' : 'stop', logprobs }],
    usage: {
      prompt_tokens: out.promptTokens,
      completion_tokens: out.tokens.length,
      total_tokens: out.promptTokens + out.tokens.length,
    },
    deciserve: {
      ran_on: 'edge',
      engine: engine.name,
      seed: job.options.seed,
      decimation: decimationReport(job.decimation, out.kept, job.ids.length),
    },
  };
  return {
    result,
    timings: { loadMs, prefillMs: out.timings.prefillMs + extraPrefillMs, decodeMs: out.timings.decodeMs },
  };
}

export async function scoreAtEdge(
  ctx: RunContext,
  request: JobRequest & { type: 'score' },
): Promise<{ result: EdgeScore; timings: EdgeTimings }> {
  const { job, engine, loadMs } = await prepared(ctx, request);
  if (job.kind !== 'score') throw new Error('expected a score job');
  const t0 = performance.now();
  const out = await scoreSpan(engine, job.ids, { start: job.start, decimation: job.decimation });
  const prefillMs = performance.now() - t0;
  const result: EdgeScore = {
    id: ctx.id,
    object: 'score',
    created: Math.floor(Date.now() / 1000),
    model: ctx.modelId,
    tokens: out.tokens,
    token_strings: out.tokens.map((id) => ctx.model.tokenizer.decode([id])),
    logprobs: out.logprobs,
    nll: out.nll,
    mean_nll: out.meanNll,
    perplexity: out.perplexity,
    usage: { prompt_tokens: job.ids.length, total_tokens: job.ids.length },
    deciserve: {
      ran_on: 'edge',
      engine: engine.name,
      decimation: decimationReport(job.decimation, out.kept, job.ids.length),
    },
  };
  return { result, timings: { loadMs, prefillMs, decodeMs: 0 } };
}
