// protocol/signing.ts against an independent HMAC (node:crypto) over the documented message, and its edge cases:
// header parsing, hex decoding, nonces, and signedHeaders' body and nonce handling.
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  isValidNonce,
  newNonce,
  sign,
  signedHeaders,
  verifySignature,
  type SignedParts,
} from '../../protocol/signing.ts';

const SECRET = 'signing-test-secret-0123';
const enc = new TextEncoder();
const parts = (over: Partial<SignedParts> = {}): SignedParts => ({
  timestamp: 1_700_000_000,
  nonce: 'nonce-0123456789ab',
  method: 'post',
  path: '/jobs?x=1',
  body: enc.encode('{"a":1}'),
  ...over,
});
/** The documented message: "v1\n{timestamp}\n{nonce}\n{METHOD}\n{path+query}\n" + body. */
const expected = (p: SignedParts, secret = SECRET) =>
  'v1=' +
  createHmac('sha256', secret)
    .update(`v1\n${p.timestamp}\n${p.nonce}\n${p.method.toUpperCase()}\n${p.path}\n`)
    .update(p.body)
    .digest('hex');

describe('sign', () => {
  it('is HMAC-SHA256 of the documented message, the method upper-cased', async () => {
    expect(await sign(SECRET, parts())).toBe(expected(parts()));
    expect(await sign(SECRET, parts({ method: 'GET', body: new Uint8Array() }))).toBe(
      expected(parts({ method: 'GET', body: new Uint8Array() })),
    );
    // two secrets in a row: each gets its own key
    expect(await sign('another-secret-4567890', parts())).toBe(expected(parts(), 'another-secret-4567890'));
    expect(await sign(SECRET, parts())).toBe(expected(parts()));
  });
});

describe('verifySignature', () => {
  it('accepts upper-case hex and surrounding whitespace', async () => {
    const sig = await sign(SECRET, parts());
    expect(await verifySignature(SECRET, parts(), `  ${sig}\n`)).toBe(true);
    expect(await verifySignature(SECRET, parts(), 'v1=' + sig.slice(3).toUpperCase())).toBe(true);
  });

  it('refuses another version, odd or extra hex digits and non-hex characters, even where a lax parse would match', async () => {
    const sig = await sign(SECRET, parts());
    const hex = sig.slice(3);
    expect(await verifySignature(SECRET, parts(), `v2=${hex}`)).toBe(false);
    expect(await verifySignature(SECRET, parts(), `${sig}0`)).toBe(false); // 65 digits: must not verify as its first 64
    expect(await verifySignature(SECRET, parts(), `${sig}00`)).toBe(false); // 33 bytes
    expect(await verifySignature(SECRET, parts(), sig.slice(0, -2))).toBe(false);
    expect(await verifySignature(SECRET, parts(), `v1=x${hex}`)).toBe(false);
    // A byte written "0d" with its 0 replaced by a space still parseInt()s to 13: the hex check must refuse it.
    let p = parts();
    let s = await sign(SECRET, p);
    for (let i = 0; !/^(?:..)*?0[1-9a-f]/.test(s.slice(3)); i++)
      s = await sign(SECRET, (p = parts({ nonce: `nonce-0123456789-${i}` })));
    const at = 3 + s.slice(3).search(/(?<=^(?:..)*)0[1-9a-f]/);
    expect(await verifySignature(SECRET, p, s)).toBe(true);
    expect(await verifySignature(SECRET, p, `${s.slice(0, at)} ${s.slice(at + 1)}`)).toBe(false);
  });
});

describe('nonces', () => {
  it('are 16-128 characters of [A-Za-z0-9_-]', () => {
    expect(isValidNonce('a'.repeat(16))).toBe(true);
    expect(isValidNonce('A-_9'.repeat(32))).toBe(true);
    expect(isValidNonce('a'.repeat(15))).toBe(false);
    expect(isValidNonce('a'.repeat(129))).toBe(false);
    expect(isValidNonce(`!${'a'.repeat(16)}`)).toBe(false);
    expect(isValidNonce(`${'a'.repeat(16)}!`)).toBe(false);
    expect(isValidNonce(`${'a'.repeat(16)}+/=`)).toBe(false);
  });

  it('newNonce gives 24 URL-safe base64 characters (18 random bytes), different every time', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const n = newNonce();
      expect(n).toMatch(/^[A-Za-z0-9_-]{24}$/);
      expect(isValidNonce(n)).toBe(true);
      seen.add(n);
    }
    expect(seen.size).toBe(200);
  });
});

describe('signedHeaders', () => {
  it('signs string, byte and empty bodies as the bytes sent, with the given or a fresh nonce', async () => {
    const bytes = enc.encode('{"b":2}');
    for (const [body, signed] of [
      ['{"a":1}', enc.encode('{"a":1}')],
      [bytes, bytes],
      [undefined, new Uint8Array()],
    ] as const) {
      const h = await signedHeaders(SECRET, {
        method: 'POST',
        path: '/jobs',
        body,
        now: 1_700_000_000_999,
        nonce: 'given-nonce-0123456',
      });
      expect(h).toEqual({
        'x-deciserve-timestamp': '1700000000',
        'x-deciserve-nonce': 'given-nonce-0123456',
        'x-deciserve-signature': expected({
          timestamp: 1_700_000_000,
          nonce: 'given-nonce-0123456',
          method: 'POST',
          path: '/jobs',
          body: signed,
        }),
      });
    }
    const fresh = await signedHeaders(SECRET, { method: 'GET', path: '/jobs/a' });
    expect(isValidNonce(fresh['x-deciserve-nonce']!)).toBe(true);
    expect(Math.abs(Number(fresh['x-deciserve-timestamp']) - Date.now() / 1000)).toBeLessThan(5);
  });
});
