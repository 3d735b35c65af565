// One engine pass: a group of jobs the batcher picked under a token budget, turned into results.
//
// The batch seam: `preparePass` (each job's plan as intake made it: tokenized and decimation resolved once, at
// intake; only suite samples and inputs stored without a plan are tokenized here, on the engine thread's pool if it
// has one) → the engine → `buildOutcome`.
// A pass's completions run through generateBatch: as one batch on an engine that packs batches (CUDA: one batched
// prefill, one decode session), one at a time on the CPU engines; each score job is a prefill of its own, so its
// numbers never depend on what shares its pass. A suite item (a whole benchmark, runner/pass/suite.ts) runs as
// sub-passes of its sample jobs through this same path.
import type { GenerateResult } from '../../mamba/generate.ts';
import { generateBatch } from '../../mamba/generate.ts';
import { asError } from '../../mamba/engine-base.ts';
import { scoreSpan, type ScoreResult } from '../../mamba/score.ts';
import type {
  EngineOutput,
  JobStats,
  LoadedEngine,
  PassContext,
  PassHooks,
  PassItem,
  PassOutcome,
} from './pass-types.ts';
import type { JobRequest, SuiteJobRequest } from '../../protocol/job-request.ts';
import { JobInputError, type PreparedJob } from '../../protocol/prepare-job.ts';
import { preparePass } from './prepare-pass.ts';
import {
  decimationReport,
  keptSummary,
  type CompletionResult,
  type ResultExtras,
  type ScoreJobResult,
} from '../../protocol/results.ts';
import { runSuite } from './suite.ts';

/** The engine's outputs for prepared jobs (index i for jobs[i]; an Error fails only that job) and their wall times. */
async function runEngine(loaded: LoadedEngine, jobs: PreparedJob[]) {
  const outputs = new Array<EngineOutput | Error>(jobs.length);
  const engineMs = new Array<number>(jobs.length);
  const completions = jobs.flatMap((job, i) => (job.kind === 'completion' ? [{ i, job }] : []));
  // One batch on an engine that packs batches; one job at a time (batches of one) on the others.
  const batches = loaded.engine.packsBatches ? [completions] : completions.map((c) => [c]);
  for (const batch of batches.filter((b) => b.length > 0)) {
    const t0 = performance.now();
    const results = await generateBatch(
      loaded.engine,
      loaded.tokenizer,
      batch.map(({ job }) => ({ ids: job.ids, options: job.kind === 'completion' ? job.options : {} })),
    );
    const ms = performance.now() - t0;
    batch.forEach(({ i }, j) => {
      outputs[i] = results[j]!;
      engineMs[i] = ms;
    });
  }
  for (const [i, job] of jobs.entries()) {
    if (job.kind !== 'score') continue;
    const t0 = performance.now();
    outputs[i] = await scoreSpan(loaded.engine, job.ids, { start: job.start, decimation: job.decimation }).catch(
      asError,
    );
    engineMs[i] = performance.now() - t0;
  }
  return { outputs, engineMs };
}

export async function runPass(
  loaded: LoadedEngine,
  items: PassItem[],
  ctx: PassContext,
  hooks: PassHooks = {},
): Promise<PassOutcome[]> {
  const isSuite = (item: PassItem): item is PassItem<SuiteJobRequest> => item.request.type === 'suite';
  const jobs = items.filter((item): item is PassItem<JobRequest> => !isSuite(item));
  const outcomes = new Map<string, PassOutcome>();
  if (jobs.length > 0) for (const o of await runJobs(loaded, jobs, ctx, hooks)) outcomes.set(o.id, o);
  for (const item of items.filter(isSuite)) {
    const env = {
      tokenizer: loaded.tokenizer,
      engine: loaded.engine.name,
      haystack: () => {
        if (!hooks.haystack)
          throw new JobInputError("suites need the model folder's haystack.txt, which this engine cannot read");
        return hooks.haystack();
      },
      run: (sub: PassItem<JobRequest>[]) => runJobs(loaded, sub, ctx, hooks),
      log: hooks.log,
    };
    // Samples fail one by one inside runSuite; what throws out of it (no haystack, a length the text or the
    // needle cannot fill) fails the same way on every retry.
    const fail = (err: unknown) => failure(item.id, new JobInputError(`suite: ${(err as Error)?.message ?? err}`));
    outcomes.set(item.id, await runSuite(item, env).catch(fail));
  }
  return items.map((item) => outcomes.get(item.id)!);
}

// Passes may be prepared side by side (pass N+1 tokenized on the pool while pass N runs), but each engine runs one
// pass at a time: a pass waits here for the one before it.
const engineQueues = new WeakMap<LoadedEngine, Promise<unknown>>();
function engineTurn<T>(loaded: LoadedEngine, run: () => Promise<T>): Promise<T> {
  const turn = (engineQueues.get(loaded) ?? Promise.resolve()).then(run);
  engineQueues.set(
    loaded,
    turn.catch(() => {}),
  );
  return turn;
}

/** Completion and score jobs: prepared, then run (runEngine), one pass at a time per engine. */
async function runJobs(
  loaded: LoadedEngine,
  items: PassItem<JobRequest>[],
  ctx: PassContext,
  hooks: PassHooks,
): Promise<PassOutcome[]> {
  const outcomes = new Map<string, PassOutcome>();
  const prepared: PreparedJob[] = [];
  (await preparePass(loaded.tokenizer, items, ctx.model, hooks.tokenize)).forEach((job, i) => {
    if (job instanceof Error) outcomes.set(items[i]!.id, failure(items[i]!.id, job));
    else prepared.push(job);
  });
  const { outputs, engineMs } = await engineTurn(loaded, () => runEngine(loaded, prepared));
  prepared.forEach((job, i) => {
    const output = outputs[i];
    const item = items.find((it) => it.id === job.id)!;
    if (!output || output instanceof Error)
      outcomes.set(job.id, failure(job.id, output ?? new Error('engine returned no output')));
    else outcomes.set(job.id, buildOutcome(loaded, item, job, output, ctx, engineMs[i]!));
  });
  return items.map((item) => outcomes.get(item.id)!);
}

function failure(id: string, err: unknown): PassOutcome {
  const error = err instanceof Error ? err : new Error(String(err));
  // Bad inputs (and engine input checks) fail the same way every time: do not retry them.
  const permanent = ['JobInputError', 'EngineInputError', 'DecimationError', 'RangeError'].includes(error.name);
  return {
    id,
    ok: false,
    error: { message: error.message, code: permanent ? 'invalid_job' : 'engine_error' },
    retryable: !permanent,
  };
}

function buildOutcome(
  loaded: LoadedEngine,
  item: PassItem<JobRequest>,
  job: PreparedJob,
  output: EngineOutput,
  ctx: PassContext,
  engineMs: number,
): PassOutcome {
  // The fields every result starts with, in the order the stored JSON has always had them.
  const head = <O extends string>(object: O) => ({
    id: item.id,
    object,
    created: Math.floor(item.createdAt / 1000),
    model: ctx.modelId,
  });
  const kept = keptSummary(output.kept);
  const keptTokens = kept.length > 0 ? kept[kept.length - 1]!.tokens : job.ids.length;
  const extras = (seed?: number): ResultExtras => ({
    engine: loaded.engine.name,
    ...(seed === undefined ? {} : { seed }),
    decimation: decimationReport(job.decimation, output.kept, job.ids.length),
  });
  if (job.kind === 'completion') {
    const out = output as GenerateResult;
    const result: CompletionResult = {
      ...head('text_completion'),
      choices: [
        { index: 0, text: out.text, finish_reason: out.finishReason === 'length' ? 'length' : 'stop', logprobs: null },
      ],
      usage: {
        prompt_tokens: out.promptTokens,
        completion_tokens: out.tokens.length,
        total_tokens: out.promptTokens + out.tokens.length,
      },
      deciserve: extras(job.options.seed),
    };
    const stats: JobStats = {
      promptTokens: out.promptTokens,
      completionTokens: out.tokens.length,
      scoredTokens: 0,
      keptTokens,
      decimated: job.decimation !== null,
      prefillMs: out.timings.prefillMs,
      decodeMs: out.timings.decodeMs,
    };
    return { id: item.id, ok: true, result, stats };
  }
  const out = output as ScoreResult;
  const result: ScoreJobResult = {
    ...head('score'),
    tokens: out.tokens,
    logprobs: out.logprobs,
    nll: out.nll,
    mean_nll: out.meanNll,
    perplexity: out.perplexity,
    usage: { prompt_tokens: job.ids.length, total_tokens: job.ids.length },
    deciserve: extras(),
  };
  const stats: JobStats = {
    promptTokens: job.ids.length,
    completionTokens: 0,
    scoredTokens: out.tokens.length,
    keptTokens,
    decimated: job.decimation !== null,
    prefillMs: engineMs,
    decodeMs: 0,
  };
  return { id: item.id, ok: true, result, stats };
}
