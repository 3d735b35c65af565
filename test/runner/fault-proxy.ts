// An HTTP proxy in front of radosgw that can answer 503 for a while: S3 "having a bad day", for retry tests.
// It forwards the Host header untouched, so SigV4 signatures made for the proxy's address still verify.
import { createServer, request, type Server } from 'node:http';

export interface FaultProxy {
  url: string;
  /** Answer every request with 503 for `ms` milliseconds from now. */
  failFor(ms: number): void;
  /** Answer the next `n` requests with 503. */
  failNext(n: number): void;
  /** How many requests were answered 503 so far. */
  readonly served503: number;
  readonly forwarded: number;
  close(): Promise<void>;
}

const SLOW_DOWN =
  '<?xml version="1.0" encoding="UTF-8"?><Error><Code>ServiceUnavailable</Code><Message>injected fault</Message></Error>';

export async function startFaultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  let failUntil = 0;
  let failCount = 0;
  let served503 = 0;
  let forwarded = 0;
  const server: Server = createServer((req, res) => {
    if (Date.now() < failUntil || failCount > 0) {
      if (failCount > 0) failCount--;
      served503++;
      req.resume();
      req.on('end', () =>
        res
          .writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(SLOW_DOWN) })
          .end(SLOW_DOWN),
      );
      return;
    }
    forwarded++;
    const out = request(
      { host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    out.on('error', () => res.writeHead(502).end());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    failFor: (ms) => void (failUntil = Date.now() + ms),
    failNext: (n) => void (failCount = n),
    get served503() {
      return served503;
    },
    get forwarded() {
      return forwarded;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
