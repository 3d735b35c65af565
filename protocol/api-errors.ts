// Errors in the OpenAI shape ({ error: { message, type, param, code } }), which the edge API passes through.
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';

export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'not_found_error'
  | 'conflict_error'
  | 'server_error';

export interface ApiErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: string | null };
}

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly type: ErrorType,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
  }

  body(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (code: string, message: string, param: string | null = null) =>
  new ApiError(400, 'invalid_request_error', code, message, param);
export const unauthorized = (code: string, message: string) => new ApiError(401, 'authentication_error', code, message);
export const notFound = (code: string, message: string, param: string | null = null) =>
  new ApiError(404, 'not_found_error', code, message, param);
export const conflict = (code: string, message: string, param: string | null = null) =>
  new ApiError(409, 'conflict_error', code, message, param);
export const unavailable = (code: string, message: string) => new ApiError(503, 'server_error', code, message);

/** The first zod issue as a 400, naming the parameter the way OpenAI does ("stop.0"): the edge's and the runner's. */
export function zodError(error: z.ZodError): ApiError {
  const issue = error.issues[0]!;
  const param = issue.path.length > 0 ? issue.path.join('.') : null;
  const code =
    issue.code === 'unrecognized_keys'
      ? 'unknown_parameter'
      : issue.code === 'too_big'
        ? 'value_too_large'
        : 'invalid_value';
  const detail = issue.code === 'unrecognized_keys' ? `unknown parameter(s): ${issue.keys.join(', ')}` : issue.message;
  return badRequest(code, param ? `${param}: ${detail}` : detail, param);
}

export function errorResponse(c: Context, err: ApiError): Response {
  if (err.status === 503) c.header('Retry-After', '2');
  return c.json(err.body(), err.status);
}
