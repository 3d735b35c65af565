// The CUDA engine as the runner's BatchEngine. A pass's completions run together: one batched prefill, each prompt
// with its own DeciMamba settings, then batched decode steps (mamba/cuda/batch-generate.ts). Score jobs run one
// prefill each, through the same scoreSpan as every other engine, so their numbers cannot drift apart.
import type { CudaEngine } from '../../mamba/cuda/engine.ts';
import { generateBatch } from '../../mamba/cuda/batch-generate.ts';
import { scoreSpan } from '../../mamba/score.ts';
import type { TextTokenizer } from '../../mamba/tokenizer.ts';
import type { BatchEngine, EngineOutput } from '../pass/pass-types.ts';
import type { PreparedJob } from '../../protocol/prepare-job.ts';

export class CudaBatchEngine implements BatchEngine {
  constructor(
    private readonly engine: CudaEngine,
    private readonly tokenizer: TextTokenizer,
  ) {}

  async runBatch(jobs: PreparedJob[]): Promise<Array<EngineOutput | Error>> {
    const out = new Array<EngineOutput | Error>(jobs.length);
    const completions = jobs.flatMap((job, i) => (job.kind === 'completion' ? [{ i, job }] : []));
    if (completions.length > 0) {
      const results = await generateBatch(
        this.engine,
        this.tokenizer,
        completions.map(({ job }) => ({ ids: job.ids, options: job.kind === 'completion' ? job.options : {} })),
      );
      completions.forEach(({ i }, j) => (out[i] = results[j]!));
    }
    for (const [i, job] of jobs.entries()) {
      if (job.kind !== 'score') continue;
      out[i] = await scoreSpan(this.engine, job.ids, { start: job.start, decimation: job.decimation }).catch(
        (err: unknown) => (err instanceof Error ? err : new Error(String(err))),
      );
    }
    return out;
  }
}
