// Reads a JSON request body the strict way before zod sees it: size limit (the runner's reader: 413 past the
// limit), Content-Type (415), valid UTF-8 and valid JSON (400). The text is handed to Hono's body cache, so the
// route's zod validator parses exactly these bytes.
import type { MiddlewareHandler } from 'hono';
import { readBodyWithLimit, type RawBodyEnv } from '../../protocol/body-limit.ts';
import { badRequest, unsupportedMediaType } from './errors.ts';

const JSON_TYPE = /^application\/json\s*(;\s*charset="?utf-8"?\s*)?$/i;
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function jsonBody(maxBytes: number): MiddlewareHandler<RawBodyEnv> {
  const readLimited = readBodyWithLimit(maxBytes);
  return async (c, next) => {
    if (!JSON_TYPE.test(c.req.header('content-type') ?? '')) throw unsupportedMediaType();
    return readLimited(c, async () => {
      let text: string;
      try {
        text = utf8.decode(c.get('rawBody'));
      } catch {
        throw badRequest('invalid_encoding', 'body is not valid UTF-8');
      }
      try {
        JSON.parse(text);
      } catch (err) {
        throw badRequest('invalid_json', `body is not valid JSON: ${(err as Error).message}`);
      }
      // Hono keeps promises in its body cache (its type says the values themselves).
      c.req.bodyCache.text = Promise.resolve(text) as unknown as string;
      await next();
    });
  };
}
