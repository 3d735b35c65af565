// API keys: `Authorization: Bearer <key>` through Hono's bearer-auth middleware, with our own constant-time lookup.
// The presented key and every configured key are compared as SHA-256 digests (equal lengths), over all keys
// without an early exit, so timing reveals neither the key nor which key matched. The match is remembered as a
// short key id (a digest prefix, never the key) for rate limits and idempotency namespaces.
import type { MiddlewareHandler } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import { ApiError } from './errors.ts';

export type AuthEnv = { Variables: { apiKeyId: string } };

const encoder = new TextEncoder();

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', encoder.encode(text)));
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');

/** Index of the key whose digest equals `digest`, or -1; touches every byte of every key. */
function constantTimeFind(digest: Uint8Array, keys: Uint8Array[]): number {
  let found = -1;
  keys.forEach((key, index) => {
    let diff = 0;
    for (let i = 0; i < key.length; i++) diff |= key[i]! ^ digest[i]!;
    // Branch-free select: diff is 0..255, so (diff - 1) >> 8 is -1 (all ones) exactly when diff === 0, else 0.
    const mask = (diff - 1) >> 8;
    found = (found & ~mask) | (index & mask);
  });
  return found;
}

const errorBody = (status: 400 | 401, code: string, message: string) =>
  new Response(JSON.stringify(new ApiError(status, 'authentication_error', code, message).body()), {
    status,
    headers: { 'content-type': 'application/json' },
  });

export function requireApiKey(keys: string[]): MiddlewareHandler<AuthEnv> {
  const digests = Promise.all(keys.map(sha256));
  return bearerAuth({
    verifyToken: async (token, c) => {
      const digest = await sha256(token);
      const index = constantTimeFind(digest, await digests);
      if (index < 0) return false;
      c.set('apiKeyId', hex(digest.subarray(0, 8)));
      return true;
    },
    noAuthenticationHeader: {
      message: () =>
        errorBody(401, 'missing_api_key', 'You did not provide an API key: send "Authorization: Bearer <key>"'),
    },
    invalidAuthenticationHeader: {
      message: () => errorBody(401, 'invalid_authorization_header', 'The Authorization header must be "Bearer <key>"'),
    },
    invalidToken: { message: () => errorBody(401, 'invalid_api_key', 'Incorrect API key provided') },
  }) as MiddlewareHandler<AuthEnv>;
}
