// A pass's jobs turned into engine input: the plan intake stored with each job (runner/store/jobs.ts), as it is.
// Suite samples and inputs stored without a plan are tokenized here: with the engine thread's tokenizer pool
// (mamba/token-pool.ts) every text of the pass goes out in one call, so the prompts spread over the pool's threads
// and this thread stays free to run the previous pass on the engine; without one, each job is tokenized here.
import type { TextTokenizer } from '../../mamba/tokenizer.ts';
import type { ModelDefaults } from '../../mamba/model-defaults.ts';
import type { JobRequest } from '../../protocol/job-request.ts';
import {
  JobInputError,
  jobTexts,
  prepareEncodedJob,
  prepareJob,
  type PreparedJob,
} from '../../protocol/prepare-job.ts';
import { loadPlan } from '../store/jobs.ts';
import type { PassItem, TokenizeTexts } from './pass-types.ts';

const asError = (err: unknown) => (err instanceof Error ? err : new Error(String(err)));

/** Index i of the answer belongs to items[i]: its prepared job, or the Error that fails only that job. */
export async function preparePass(
  tokenizer: TextTokenizer,
  items: PassItem<JobRequest>[],
  model: ModelDefaults,
  tokenize?: TokenizeTexts,
): Promise<Array<PreparedJob | Error>> {
  const prepareHere = (item: PassItem<JobRequest>) => {
    try {
      return prepareJob(tokenizer, item, model);
    } catch (err) {
      return asError(err);
    }
  };
  // Jobs intake planned run as planned; the rest (suite samples, inputs stored before plans) are prepared here.
  const planned = items.map((item) => (item.plan ? loadPlan(item.plan) : null));
  const rest = items.filter((_, i) => !planned[i]);
  const prepared = !tokenize || rest.length === 0 ? rest.map(prepareHere) : await prepareOnPool(rest, tokenize, model);
  let at = 0;
  return planned.map((plan) => plan ?? prepared[at++]!);
}

async function prepareOnPool(
  items: PassItem<JobRequest>[],
  tokenize: TokenizeTexts,
  model: ModelDefaults,
): Promise<Array<PreparedJob | Error>> {
  const texts = items.map((item) => jobTexts(item.request));
  let encoded: Array<number[] | Error>;
  try {
    encoded = await tokenize(texts.flat());
  } catch (err) {
    // The pool itself failed (a thread died): not the prompts' fault, so the jobs fail retryably.
    const failed = new Error(`tokenizer pool: ${asError(err).message}`);
    return items.map(() => failed);
  }
  let at = 0;
  return items.map((item, i) => {
    const mine = encoded.slice(at, (at += texts[i]!.length));
    const bad = mine.find((ids) => ids instanceof Error);
    if (bad) return new JobInputError((bad as Error).message); // the text itself: the same on every retry
    try {
      return prepareEncodedJob(item, { prompt: mine[0] as number[], continuation: (mine[1] as number[]) ?? [] }, model);
    } catch (err) {
      return asError(err);
    }
  });
}
