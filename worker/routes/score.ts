// POST /v1/score: per-token log-probabilities, NLL and perplexity of a text, or of a continuation given a prompt.
// Routed like completions: short texts here, long ones as runner jobs (result as if synchronous, or 202).
import { createRoute } from '@hono/zod-openapi';
import type { JobRequest } from '../../protocol/job-request.ts';
import type { ScoreJobResult } from '../../protocol/results.ts';
import type { EdgeApp, RouteDeps } from '../deps.ts';
import { scoreAtEdge } from '../edge-run.ts';
import { badRequest } from '../http/errors.ts';
import { Score } from '../schemas.ts';
import { runOnRunner } from './completion-flow.ts';
import {
  checkModel,
  countTokens,
  errorResponses,
  jobAccepted,
  markRanOn,
  openModel,
  placeWork,
  ranOnHeaders,
  reportEdgeTimings,
  security,
} from './common.ts';

export function registerScore(app: EdgeApp, deps: RouteDeps): void {
  const route = createRoute({
    method: 'post',
    path: '/v1/score',
    tags: ['score'],
    summary: 'Log-probabilities and perplexity of a text or a continuation',
    description:
      "Without `continuation`, every token after the first is scored; with it, only the continuation's tokens, " +
      'given the prompt. Long texts run as runner jobs, like completions.',
    security,
    request: { body: { content: { 'application/json': { schema: deps.schemas.scoreRequest } }, required: true } },
    responses: {
      200: { description: 'The scores', headers: ranOnHeaders, content: { 'application/json': { schema: Score } } },
      202: jobAccepted,
      ...errorResponses,
    },
  });

  app.openapi(route, async (c) => {
    const body = c.req.valid('json');
    checkModel(deps, body.model);
    const model = await openModel(c, deps);
    const texts = body.continuation === undefined ? [body.prompt] : [body.prompt, body.continuation];
    const promptTokens = await countTokens(c, deps, model, texts);
    if (promptTokens < 2) throw badRequest('invalid_value', 'score needs at least two tokens', 'prompt');
    const job: JobRequest & { type: 'score' } = {
      type: 'score',
      model: body.model,
      prompt: body.prompt,
      ...(body.continuation !== undefined ? { continuation: body.continuation } : {}),
      max_tokens: 0,
      temperature: 0,
      top_p: 1,
      top_k: 0,
      decimation: body.decimation,
      ...(body.decimation_params ? { decimation_params: body.decimation_params } : {}),
      priority: body.priority,
    };
    const placement = await placeWork(c, deps, model, job, {
      promptTokens,
      newTokens: 0,
      prefilledTokens: 0,
      scoredTokens: promptTokens,
    });
    if (placement.where === 'edge') {
      markRanOn(c, 'edge');
      const release = await deps.gate.acquire();
      try {
        const { result, timings } = await scoreAtEdge(
          { model, modelId: deps.config.modelId, id: `score-${c.get('requestId')}`, signal: c.req.raw.signal },
          job,
        );
        reportEdgeTimings(c, timings);
        return c.json(result, 200);
      } finally {
        release();
      }
    }
    markRanOn(c, 'runner');
    const outcome = await runOnRunner<ScoreJobResult>(c, deps, model, job, promptTokens);
    if (outcome instanceof Response) return outcome as never;
    const stored = outcome.result;
    return c.json(
      {
        ...stored,
        token_strings: stored.tokens.map((id) => model.tokenizer.decode([id])),
        deciserve: { ...stored.deciserve, ran_on: 'runner' as const, job_id: outcome.jobId },
      },
      200,
    );
  });
}
