// A pass's jobs turned into engine input. With the engine thread's tokenizer pool (mamba/token-pool.ts) every text
// of the pass goes out in one call, so the prompts spread over the pool's threads and this thread stays free to run
// the previous pass on the engine; without one, each job is tokenized here (CPU engines, tests, the edge's path).
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
  if (!tokenize) return items.map(prepareHere);
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
