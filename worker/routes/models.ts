// GET /v1/models and /v1/models/{model} (OpenAI shape), with what this deployment does with the model.
import { createRoute, z } from '@hono/zod-openapi';
import type { EdgeApp, RouteDeps } from '../deps.ts';
import { modelNotFound } from '../http/errors.ts';
import { edgeMaxPromptTokens } from '../routing.ts';
import { Model, ModelList } from '../schemas.ts';
import { errorResponses, security } from './common.ts';

export function registerModels(app: EdgeApp, deps: RouteDeps): void {
  const describe = async () => {
    const model = await deps.model();
    return {
      id: deps.config.modelId,
      object: 'model' as const,
      created: 0,
      owned_by: 'deciserve',
      deciserve: {
        training_length: model.defaults.trainLen,
        edge_max_prompt_tokens: edgeMaxPromptTokens(deps.config, model),
        edge_max_decimation_tokens: edgeMaxPromptTokens(deps.config, model, true),
        max_prompt_tokens: deps.runner ? deps.config.limits.maxPromptTokens : edgeMaxPromptTokens(deps.config, model),
        max_new_tokens: deps.config.limits.maxNewTokens,
        long_context: deps.runner !== null,
        decimation_defaults: model.defaults.decimation,
        edge_engine: `onnx-wasm-${model.manifest.quantization === 'none' ? 'fp32' : model.manifest.quantization}`,
      },
    };
  };

  const list = createRoute({
    method: 'get',
    path: '/v1/models',
    tags: ['models'],
    summary: 'The models served',
    security,
    responses: {
      200: { description: 'Models', content: { 'application/json': { schema: ModelList } } },
      ...errorResponses,
    },
  });
  app.openapi(list, async (c) => c.json({ object: 'list' as const, data: [await describe()] }, 200));

  const one = createRoute({
    method: 'get',
    path: '/v1/models/{model}',
    tags: ['models'],
    summary: 'One model',
    security,
    request: { params: z.object({ model: z.string().openapi({ param: { name: 'model', in: 'path' } }) }) },
    responses: {
      200: { description: 'The model', content: { 'application/json': { schema: Model } } },
      ...errorResponses,
    },
  });
  app.openapi(one, async (c) => {
    const { model } = c.req.valid('param');
    if (model !== deps.config.modelId) throw modelNotFound(model, deps.config.modelId);
    return c.json(await describe(), 200);
  });
}
