// Intake accepts only requests signed by the edge API (protocol/signing.ts): fresh timestamp, valid HMAC, unused
// nonce. Runs after readBodyWithLimit, which puts the raw body in the context.
import type { MiddlewareHandler } from 'hono';
import type { RawBodyEnv } from '../../protocol/body-limit.ts';
import { errorResponse, unauthorized, unavailable, type ApiError } from '../../protocol/api-errors.ts';
import {
  NONCE_HEADER,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  isValidNonce,
  verifySignature,
} from '../../protocol/signing.ts';

/** Remembers nonces for a while; claim() is false when the nonce was seen before (a replay). */
export interface NonceStore {
  claim(nonce: string, ttlMs: number): Promise<boolean>;
}

export type SignedEnv = RawBodyEnv;

export function requireSignature(opts: {
  secret: string;
  windowS: number;
  nonces: NonceStore;
}): MiddlewareHandler<RawBodyEnv> {
  return async (c, next) => {
    const fail = (err: ApiError) => errorResponse(c, err);
    const signature = c.req.header(SIGNATURE_HEADER);
    const timestampText = c.req.header(TIMESTAMP_HEADER);
    const nonce = c.req.header(NONCE_HEADER);
    if (!signature || !timestampText || !nonce) {
      return fail(
        unauthorized(
          'missing_signature',
          `signed requests need ${SIGNATURE_HEADER}, ${TIMESTAMP_HEADER} and ${NONCE_HEADER}`,
        ),
      );
    }
    const timestamp = /^\d{1,12}$/.test(timestampText) ? Number(timestampText) : NaN;
    if (!Number.isFinite(timestamp) || Math.abs(Date.now() / 1000 - timestamp) > opts.windowS) {
      return fail(unauthorized('stale_timestamp', `timestamp outside the ${opts.windowS}s window`));
    }
    if (!isValidNonce(nonce))
      return fail(unauthorized('invalid_nonce', 'nonce must be 16-128 characters of [A-Za-z0-9_-]'));
    const body = c.get('rawBody'); // read (and size-limited) by readBodyWithLimit
    const url = new URL(c.req.url);
    const ok = await verifySignature(
      opts.secret,
      { timestamp, nonce, method: c.req.method, path: url.pathname + url.search, body },
      signature,
    );
    if (!ok) return fail(unauthorized('invalid_signature', 'signature does not match'));
    // Checked after the MAC so nobody can burn nonces without the secret. Kept for twice the window: any older
    // request already fails the timestamp check.
    let fresh: boolean;
    try {
      fresh = await opts.nonces.claim(nonce, 2 * opts.windowS * 1000);
    } catch {
      return fail(unavailable('queue_unavailable', 'cannot check the request nonce right now; retry'));
    }
    if (!fresh) return fail(unauthorized('replayed_request', 'this nonce was already used'));
    await next();
  };
}
