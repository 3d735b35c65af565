// Errors in the OpenAI shape ({ error: { message, type, param, code } }), which the edge API passes through.
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

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

export function errorResponse(c: Context, err: ApiError): Response {
  if (err.status === 503) c.header('Retry-After', '2');
  return c.json(err.body(), err.status);
}
