// A completion or score request turned into engine input: tokenized, decimation resolved, sampling options set.
// The runner's intake prepares each job once, with the token ids its meter counted (prepareEncodedJob), and stores the
// result with the job (runner/store/jobs.ts), so the pass neither tokenizes nor resolves decimation again. The edge
// (worker/edge-run.ts) prepares its jobs here too, so a request gives the same answer on either (for the same engine
// numerics and seed).
import { DecimationError } from '../mamba/decimation.ts';
import type { DecimationConfig } from '../mamba/engine.ts';
import type { GenerateOptions } from '../mamba/generate.ts';
import type { ModelDefaults } from '../mamba/model-defaults.ts';
import type { TextTokenizer } from '../mamba/tokenizer.ts';
import { resolveDecimation, seedFromJobId, stopStrings, type JobRequest } from './job-request.ts';

export type PreparedJob =
  | { id: string; kind: 'completion'; ids: number[]; options: GenerateOptions; decimation: DecimationConfig | null }
  | { id: string; kind: 'score'; ids: number[]; start: number; decimation: DecimationConfig | null };

/** Errors that would fail the same way on every retry. `code`: the 400 code intake answers with. */
export class JobInputError extends Error {
  override name = 'JobInputError';
  constructor(
    message: string,
    readonly code: 'invalid_value' | 'invalid_decimation' = 'invalid_value',
  ) {
    super(message);
  }
}

export function prepareJob(
  tokenizer: TextTokenizer,
  item: { id: string; request: JobRequest },
  model: ModelDefaults,
): PreparedJob {
  const [prompt, continuation] = jobTexts(item.request).map((text) => tokenizer.encode(text));
  return prepareEncodedJob(item, { prompt: prompt!, continuation: continuation ?? [] }, model);
}

/** The texts `prepareEncodedJob` needs tokenized for `request`: the prompt, then a score's continuation if it has one. */
export function jobTexts(request: JobRequest): string[] {
  return request.type === 'score' && request.continuation !== undefined
    ? [request.prompt, request.continuation]
    : [request.prompt];
}

/** `prepareJob` with the texts already tokenized elsewhere (the runner's tokenizer pool, mamba/token-pool.ts). */
export function prepareEncodedJob(
  item: { id: string; request: JobRequest },
  encoded: { prompt: number[]; continuation: number[] },
  model: ModelDefaults,
): PreparedJob {
  const { request } = item;
  const promptIds = encoded.prompt;
  if (promptIds.length === 0) throw new JobInputError('prompt tokenizes to nothing');
  if (request.type === 'score') {
    const continuation = encoded.continuation;
    const ids = [...promptIds, ...continuation];
    const start = continuation.length > 0 ? promptIds.length : 1;
    if (ids.length < 2) throw new JobInputError('score needs at least two tokens');
    return { id: item.id, kind: 'score', ids, start, decimation: decimationFor(request, promptIds.length, model) };
  }
  const decimation = decimationFor(request, promptIds.length, model);
  const options: GenerateOptions = {
    maxTokens: request.max_tokens,
    temperature: request.temperature,
    topP: request.top_p,
    topK: request.top_k,
    seed: request.seed ?? seedFromJobId(item.id),
    stop: stopStrings(request),
    decimation,
    protect: request.protect ?? 1,
  };
  return { id: item.id, kind: 'completion', ids: promptIds, options, decimation };
}

function decimationFor(request: JobRequest, promptTokens: number, model: ModelDefaults): DecimationConfig | null {
  try {
    return resolveDecimation(request, promptTokens, model);
  } catch (err) {
    if (err instanceof DecimationError) throw new JobInputError(err.message, 'invalid_decimation');
    throw new JobInputError((err as Error).message);
  }
}
