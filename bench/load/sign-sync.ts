// The runner's intake signature (protocol/signing.ts), computed synchronously: autocannon's setupRequest cannot await.
import { createHmac, randomBytes } from 'node:crypto';

export function signedHeadersSync(
  secret: string,
  method: string,
  path: string,
  body: string,
  nowMs = Date.now(),
): Record<string, string> {
  const timestamp = String(Math.floor(nowMs / 1000));
  const nonce = randomBytes(18).toString('base64url');
  const mac = createHmac('sha256', secret)
    .update(`v1\n${timestamp}\n${nonce}\n${method.toUpperCase()}\n${path}\n`)
    .update(body)
    .digest('hex');
  return { 'x-deciserve-timestamp': timestamp, 'x-deciserve-nonce': nonce, 'x-deciserve-signature': `v1=${mac}` };
}
