// OpenAI-shaped errors ({error:{message,type,param,code}}). The class and helpers are shared with the runner (protocol/api-errors.ts),
// so an error the runner answers and one the edge answers look the same to a client.
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { ApiError, badRequest, errorResponse, notFound } from '../../protocol/api-errors.ts';

export * from '../../protocol/api-errors.ts';

export const payloadTooLarge = (message: string) =>
  new ApiError(413, 'invalid_request_error', 'body_too_large', message);
export const unsupportedMediaType = () =>
  new ApiError(415, 'invalid_request_error', 'unsupported_media_type', 'Content-Type must be application/json');
export const rateLimited = (message: string) =>
  new ApiError(429, 'invalid_request_error', 'rate_limit_exceeded', message);
export const modelNotFound = (model: string, served: string) =>
  notFound('model_not_found', `The model "${model}" does not exist; this API serves "${served}"`, 'model');
/** `qualifier`: "at least " or "more than " when the count is a bound or stopped early. */
export const contextTooLong = (tokens: number, max: number, where: string, qualifier = '') =>
  badRequest('context_length_exceeded', `${qualifier}${tokens} prompt tokens; ${where} takes at most ${max}`, 'prompt');

/** app.onError: our errors as they are, Hono's HTTPExceptions (e.g. bearer auth) with their response, the rest 500. */
export function handleError(
  err: Error,
  c: Context,
  log: (message: string, extra: Record<string, unknown>) => void,
): Response {
  if (err instanceof ApiError) return errorResponse(c, err);
  if (err instanceof HTTPException) {
    // Ours (bearer auth) carry a JSON response already; Hono's own (e.g. the OpenAPI validator's plain-text 415
    // for a Content-Type it does not parse) become the OpenAI error shape with the same status.
    if (err.res) return err.getResponse();
    const code = err.status === 415 ? 'unsupported_media_type' : 'invalid_request';
    const message =
      err.status === 415
        ? 'Content-Type must be application/json (write it as "application/json; charset=utf-8")'
        : err.message || 'invalid request';
    return errorResponse(
      c,
      new ApiError(
        err.status as ApiError['status'],
        err.status >= 500 ? 'server_error' : 'invalid_request_error',
        code,
        message,
      ),
    );
  }
  log('unhandled error', { error: err.message, stack: err.stack, requestId: c.get('requestId' as never) });
  return errorResponse(
    c,
    new ApiError(500, 'server_error', 'internal_error', 'internal error; the request id is in X-Request-Id'),
  );
}
