// Reads the whole request body up to a byte limit. An oversize body is still drained (up to a hard cap) before the
// 413, because closing the socket on a client that is still sending makes it see a reset instead of our answer.
import type { MiddlewareHandler } from 'hono';
import { ApiError, errorResponse } from './api-errors.ts';

export type RawBodyEnv = { Variables: { rawBody: Uint8Array } };

export function readBodyWithLimit(maxBytes: number): MiddlewareHandler<RawBodyEnv> {
  const drainCap = maxBytes * 4 + 1024 * 1024;
  return async (c, next) => {
    const tooLarge = () => {
      return errorResponse(
        c,
        new ApiError(413, 'invalid_request_error', 'body_too_large', `body exceeds ${maxBytes} bytes`),
      );
    };
    const declared = Number(c.req.header('content-length') ?? NaN);
    if (declared > drainCap) {
      c.header('connection', 'close');
      return tooLarge();
    }
    const chunks: Uint8Array[] = [];
    let total = 0;
    const body = c.req.raw.body;
    if (body) {
      for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
        total += chunk.length;
        if (total <= maxBytes) chunks.push(chunk);
        else if (total > drainCap) {
          c.header('connection', 'close');
          return tooLarge();
        }
      }
    }
    if (total > maxBytes) return tooLarge();
    const raw = new Uint8Array(total);
    let at = 0;
    for (const chunk of chunks) {
      raw.set(chunk, at);
      at += chunk.length;
    }
    c.set('rawBody', raw);
    await next();
  };
}
