// Idempotency-Key for completions answered at the edge (issue #13: the same key with another body got 200 twice,
// while the same request as a runner job got 409). The first answer for a key is kept (per API key, per isolate or
// process, 24 h, at most 1,000 keys): the same key with the same body replays it; with another body, 409. A
// streamed answer is not kept (only the body's digest, for the 409). Per isolate only: on Cloudflare a retry that
// lands on another isolate runs again, which the README states.
import { conflict } from './errors.ts';

interface Entry {
  bodySha256: string;
  answer?: unknown;
  at: number;
}

const TTL_MS = 24 * 3600_000;
const MAX_KEYS = 1000;

export class EdgeIdempotency {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The kept answer for this key and body, null when the key is new; throws 409 for the key with another body. */
  lookup(key: string, bodySha256: string): { answer?: unknown } | null {
    const entry = this.entries.get(key);
    if (!entry || this.now() - entry.at > TTL_MS) return null;
    if (entry.bodySha256 !== bodySha256)
      throw conflict(
        'idempotency_key_reused',
        'this Idempotency-Key was used with a different request',
        'Idempotency-Key',
      );
    return { answer: entry.answer };
  }

  remember(key: string, bodySha256: string, answer?: unknown): void {
    this.entries.delete(key);
    this.entries.set(key, { bodySha256, answer, at: this.now() });
    while (this.entries.size > MAX_KEYS) this.entries.delete(this.entries.keys().next().value!); // oldest first
  }
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
}
