// Where a webhook may go (issue #13: the runner POSTed to 127.0.0.1 and 169.254.169.254 with a presigned result URL
// in the body). https only; the address must be public unicast (ipaddr.js's range table: private, loopback,
// link-local and metadata, CGNAT, unique-local, multicast, reserved, IPv4-mapped/NAT64/6to4/Teredo forms of those
// are refused), checked on the URL at intake and on every address DNS returns at delivery. The connection uses the
// address that was checked (a lookup hook on the request), so a second, rebinding answer is never asked for.
// Redirects are not followed: a 3xx is a failed delivery. With RUNNER_WEBHOOK_DEV_LOOPBACK (local development only)
// loopback targets are allowed too, and plain http to them.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

export interface TargetPolicy {
  /** RUNNER_WEBHOOK_DEV_LOOPBACK: loopback addresses allowed, over http as well. */
  allowLoopback: boolean;
}

export class WebhookTargetError extends Error {
  override name = 'WebhookTargetError';
}

/** Why `address` may not be a webhook target, or null when it may. */
export function refusedAddress(address: string, policy: TargetPolicy): string | null {
  if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress())
    parsed = (parsed as ipaddr.IPv6).toIPv4Address();
  const range = parsed.range();
  if (range === 'unicast') return null;
  if (range === 'loopback' && policy.allowLoopback) return null;
  return `${address} is a ${range} address`;
}

const isLoopbackName = (host: string) => host === 'localhost' || host.endsWith('.localhost');

/** The URL's own problems (scheme, credentials, an IP literal or localhost): checked at intake and at delivery. */
export function refusedUrl(raw: string, policy: TargetPolicy): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'not a URL';
  }
  if (url.username || url.password) return 'credentials in the URL are not allowed';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const loopbackHost =
    isLoopbackName(host) ||
    (ipaddr.isValid(host) &&
      refusedAddress(host, { allowLoopback: false }) !== null &&
      refusedAddress(host, { allowLoopback: true }) === null);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowLoopback && loopbackHost)) {
    return 'webhook URLs must be https (http only to loopback with RUNNER_WEBHOOK_DEV_LOOPBACK)';
  }
  if (isLoopbackName(host)) return policy.allowLoopback ? null : `${host} is a loopback name`;
  if (ipaddr.isValid(host)) return refusedAddress(host, policy);
  return null;
}

export type Resolver = (host: string) => Promise<LookupAddress[]>;

export const systemResolver: Resolver = (host) =>
  new Promise((resolve, reject) =>
    dnsLookup(host, { all: true, verbatim: true }, (err, addresses) => (err ? reject(err) : resolve(addresses))),
  );

/**
 * A `lookup` for http(s).request: resolves once, refuses the host when any of its addresses is refused (so a mixed
 * answer cannot be raced), and hands the socket the first checked address.
 */
export function pinnedLookup(
  resolver: Resolver,
  policy: TargetPolicy,
  onResolve?: (addresses: LookupAddress[]) => void,
): LookupFunction {
  return ((host: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
    resolver(host).then(
      (addresses) => {
        onResolve?.(addresses);
        if (addresses.length === 0) return callback(new WebhookTargetError(`${host} has no addresses`));
        for (const a of addresses) {
          const why = refusedAddress(a.address, policy);
          if (why) return callback(new WebhookTargetError(`${host} resolves to a refused address: ${why}`));
        }
        const first = addresses[0]!;
        if (options?.all) callback(null, [first]);
        else callback(null, first.address, first.family);
      },
      (err: Error) => callback(err),
    );
  }) as LookupFunction;
}

export interface Delivery {
  status: number;
  location?: string;
}

/** POSTs `body` to `rawUrl` over a connection to a checked address; never follows a redirect. */
export function postToTarget(
  rawUrl: string,
  body: string,
  headers: Record<string, string>,
  opts: { policy: TargetPolicy; resolver?: Resolver; timeoutMs?: number },
): Promise<Delivery> {
  const why = refusedUrl(rawUrl, opts.policy);
  if (why) return Promise.reject(new WebhookTargetError(`webhook URL refused: ${why}`));
  const url = new URL(rawUrl);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      url,
      {
        method: 'POST',
        headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
        lookup: pinnedLookup(opts.resolver ?? systemResolver, opts.policy),
        timeout: opts.timeoutMs ?? 5000,
        agent: false, // no pooled socket from another lookup
      },
      (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, ...(res.headers.location ? { location: res.headers.location } : {}) });
      },
    );
    req.on('timeout', () => req.destroy(new Error('webhook timed out')));
    req.on('error', reject);
    req.end(body);
  });
}
