// HMAC-SHA256 request signing between the edge API and the runner (and for the runner's webhooks).
// WebCrypto only, so the same file works in Node and in the Cloudflare Worker (worker/ signs with it).
//
// The signed message is  "v1\n{timestamp}\n{nonce}\n{METHOD}\n{path+query}\n" followed by the raw body bytes.
// Method and path are in it so a signature for GET /jobs/a cannot be replayed as GET /jobs/b; the nonce lets the
// runner refuse an exact replay inside the timestamp window.

export const SIGNATURE_HEADER = 'x-deciserve-signature';
export const TIMESTAMP_HEADER = 'x-deciserve-timestamp';
export const NONCE_HEADER = 'x-deciserve-nonce';
const VERSION = 'v1';
const NONCE_PATTERN = /^[A-Za-z0-9_-]{16,128}$/;

export interface SignedParts {
  /** Unix seconds. */
  timestamp: number;
  nonce: string;
  method: string;
  /** Path plus query string, e.g. "/jobs/abc?x=1". */
  path: string;
  body: Uint8Array;
}

const encoder = new TextEncoder();
const keyCache = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = keyCache.get(secret);
  if (!key) {
    key = crypto.subtle.importKey('raw', encoder.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
      'verify',
    ]);
    keyCache.set(secret, key);
  }
  return key;
}

function message(parts: SignedParts): Uint8Array {
  const head = encoder.encode(
    `${VERSION}\n${parts.timestamp}\n${parts.nonce}\n${parts.method.toUpperCase()}\n${parts.path}\n`,
  );
  const out = new Uint8Array(head.length + parts.body.length);
  out.set(head);
  out.set(parts.body, head.length);
  return out;
}

function toHex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

function fromHex(hex: string): Uint8Array | null {
  if (!/^(?:[0-9a-f]{2})+$/i.test(hex)) return null;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** "v1=<hex>" */
export async function sign(secret: string, parts: SignedParts): Promise<string> {
  const mac = await crypto.subtle.sign('HMAC', await hmacKey(secret), message(parts) as BufferSource);
  return `${VERSION}=${toHex(mac)}`;
}

/** Constant-time check (crypto.subtle.verify compares MACs without early exit). */
export async function verifySignature(secret: string, parts: SignedParts, header: string): Promise<boolean> {
  const [version, hex] = header.trim().split('=', 2);
  if (version !== VERSION || !hex) return false;
  const mac = fromHex(hex);
  if (!mac || mac.length !== 32) return false;
  return crypto.subtle.verify('HMAC', await hmacKey(secret), mac as BufferSource, message(parts) as BufferSource);
}

export function isValidNonce(nonce: string): boolean {
  return NONCE_PATTERN.test(nonce);
}

export function newNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(18));
  return btoa(String.fromCharCode(...bytes))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
}

/** Headers for a signed request; `body` is exactly the bytes that will be sent. */
export async function signedHeaders(
  secret: string,
  request: { method: string; path: string; body?: Uint8Array | string; now?: number; nonce?: string },
): Promise<Record<string, string>> {
  const body = typeof request.body === 'string' ? encoder.encode(request.body) : (request.body ?? new Uint8Array());
  const timestamp = Math.floor((request.now ?? Date.now()) / 1000);
  const nonce = request.nonce ?? newNonce();
  const signature = await sign(secret, { timestamp, nonce, method: request.method, path: request.path, body });
  return { [TIMESTAMP_HEADER]: String(timestamp), [NONCE_HEADER]: nonce, [SIGNATURE_HEADER]: signature };
}
