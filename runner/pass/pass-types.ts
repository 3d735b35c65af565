// The types a pass is made of, shared by the batch loop, the engine thread, the pass itself, suites and the engine
// factory (kept apart from their code so that none of them imports another's).
import type { MambaConfig, MambaEngine } from '../../mamba/engine.ts';
import type { GenerateResult } from '../../mamba/generate.ts';
import type { ModelDefaults } from '../../mamba/model-defaults.ts';
import type { ScoreResult } from '../../mamba/score.ts';
import type { TextTokenizer } from '../../mamba/tokenizer.ts';
import type { RunnerJobRequest } from '../../protocol/job-request.ts';
import type { JobResult } from '../../protocol/results.ts';
import type { EngineKind } from '../engine/engine-kinds.ts';
import type { StoredPlan } from '../store/jobs.ts';

export interface LoadedEngine {
  /** The engine actually loaded (`auto` resolved). */
  kind: Exclude<EngineKind, 'auto'>;
  /** Every engine runs a pass's completions as one batch (mamba/generate.ts's generateBatch). */
  engine: MambaEngine;
  tokenizer: TextTokenizer;
  config: MambaConfig;
}

export interface PassItem<R extends RunnerJobRequest = RunnerJobRequest> {
  id: string;
  request: R;
  /** Unix ms, for the result's `created`. */
  createdAt: number;
  /** The engine input intake planned (token ids packed); absent on suite samples, which the pass prepares itself. */
  plan?: StoredPlan;
}

export interface PassContext {
  modelId: string;
  model: ModelDefaults;
  /** The model folder; suites read its haystack.txt (the engine thread reads it once). */
  modelDir?: string;
}

/** What only the engine thread can supply: the tokenized held-out text (suites), a logger, its tokenizer pool. */
export interface PassHooks {
  haystack?: () => number[];
  log?: (fields: Record<string, unknown>, msg: string) => void;
  /** The engine thread's tokenizer pool (mamba/token-pool.ts); without it a pass is tokenized on the engine thread. */
  tokenize?: TokenizeTexts;
}

/** Token ids for each text, index i for texts[i]; an Error in place of ids fails only that text's job. */
export type TokenizeTexts = (texts: string[]) => Promise<Array<number[] | Error>>;

export type EngineOutput = GenerateResult | ScoreResult;

export interface JobStats {
  promptTokens: number;
  completionTokens: number;
  scoredTokens: number;
  /** Tokens that reached the layers after the last decimating layer (= promptTokens without decimation). */
  keptTokens: number;
  decimated: boolean;
  prefillMs: number;
  decodeMs: number;
}

export type PassOutcome =
  | { id: string; ok: true; result: JobResult; stats: JobStats }
  | { id: string; ok: false; error: { message: string; code: string }; retryable: boolean };
