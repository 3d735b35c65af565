// One engine pass: a group of jobs the batcher picked under a token budget, turned into results.
//
// The batch seam: `preparePass` (tokenize, on the engine thread's pool if it has one; resolve decimation and
// sampling) → the engine → `buildResult`.
// Batch-1 engines (reference, ONNX) run a pass's jobs one after another; an engine that sets
// `LoadedEngine.batch` (the CUDA engine, #5) gets the whole pass's prepared jobs at once. A suite item (a whole
// benchmark, runner/pass/suite.ts) runs as sub-passes of its sample jobs through this same path.
import type { GenerateResult } from '../../mamba/generate.ts';
import { generate } from '../../mamba/generate.ts';
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
import type { JobRequest, RunnerJobRequest, SuiteJobRequest } from '../../protocol/job-request.ts';
import { JobInputError, type PreparedJob } from '../../protocol/prepare-job.ts';
import { preparePass } from './prepare-pass.ts';
import {
  decimationReport,
  keptSummary,
  type CompletionResult,
  type JobResult,
  type ResultExtras,
  type ScoreJobResult,
} from '../../protocol/results.ts';
import { runSuite } from './suite.ts';

async function runOne(loaded: LoadedEngine, job: PreparedJob): Promise<EngineOutput> {
  if (job.kind === 'completion') return generate(loaded.engine, loaded.tokenizer, job.ids, job.options);
  return scoreSpan(loaded.engine, job.ids, { start: job.start, decimation: job.decimation });
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

/** Completion and score jobs: prepared, then run one by one or as one batch. */
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
  // Engine wall time per job: its own run for batch-1 engines, the whole pass for a batched engine.
  const engineMs: number[] = [];
  const outputs = await engineTurn(loaded, async () => {
    if (loaded.batch) {
      const t0 = performance.now();
      const out = await loaded.batch.runBatch(prepared);
      prepared.forEach(() => engineMs.push(performance.now() - t0));
      return out;
    }
    const out: Array<EngineOutput | Error> = [];
    for (const job of prepared) {
      const t0 = performance.now();
      out.push(
        await runOne(loaded, job).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err)))),
      );
      engineMs.push(performance.now() - t0);
    }
    return out;
  });
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
  const created = Math.floor(item.createdAt / 1000);
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
      id: item.id,
      object: 'text_completion',
      created,
      model: ctx.modelId,
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
    id: item.id,
    object: 'score',
    created,
    model: ctx.modelId,
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
