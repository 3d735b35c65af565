// Webhook targets (runner/webhooks/webhook-target.ts): every private, loopback, link-local, metadata and reserved range in
// IPv4 and IPv6 (and IPv4 spelled as IPv6, hex or decimal), https by default, DNS answers checked and pinned (a
// resolver stub plays DNS, including a rebinding one), redirects never followed; and the intake refusing such URLs.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  postToTarget,
  refusedAddress,
  refusedUrl,
  WebhookTargetError,
  type Resolver,
} from '../../runner/webhooks/webhook-target.ts';
import {
  JobClient,
  ensureRadosgw,
  freshDir,
  runTag,
  runnerEnv,
  spawnRunner,
  startRedis,
  writeTinyCheckpoint,
  type RedisHandle,
  type RunnerProcess,
} from '../runner/harness.ts';
import { join } from 'node:path';

const strict = { allowLoopback: false };
const dev = { allowLoopback: true };

const REFUSED_V4 = [
  '0.0.0.0',
  '10.0.0.1',
  '10.255.255.255',
  '100.64.0.1',
  '127.0.0.1',
  '127.1.2.3',
  '169.254.169.254',
  '169.254.0.1',
  '172.16.0.1',
  '172.31.255.255',
  '192.0.0.1',
  '192.0.2.1',
  '192.168.1.1',
  '198.18.0.1',
  '198.51.100.1',
  '203.0.113.1',
  '224.0.0.1',
  '240.0.0.1',
  '255.255.255.255',
];
const REFUSED_V6 = [
  '::',
  '::1',
  'fc00::1',
  'fd00:ec2::254',
  'fe80::1',
  'fe80::1ff:fe23:4567:890a',
  'ff02::1',
  '::ffff:127.0.0.1',
  '::ffff:7f00:1',
  '::ffff:169.254.169.254',
  '::ffff:10.0.0.1',
  '::ffff:192.168.0.1',
  '64:ff9b::a9fe:a9fe',
  '2002:a9fe:a9fe::1',
  '2001::1',
  '2001:db8::1',
  '100::1',
];
const PUBLIC = [
  '93.184.216.34',
  '8.8.8.8',
  '1.1.1.1',
  '2606:4700:4700::1111',
  '2001:4860:4860::8888',
  '::ffff:8.8.8.8',
];

describe('addresses', () => {
  it.each([...REFUSED_V4, ...REFUSED_V6])('%s is refused', (address) => {
    expect(refusedAddress(address, strict)).toMatch(/is a \w+ address/);
  });

  it.each(PUBLIC)('%s (public unicast) is allowed', (address) => {
    expect(refusedAddress(address, strict)).toBeNull();
  });

  it('loopback (v4, v6, v4-mapped) only with the dev flag; never link-local or private', () => {
    for (const a of ['127.0.0.1', '::1', '::ffff:127.0.0.1']) expect(refusedAddress(a, dev)).toBeNull();
    for (const a of ['169.254.169.254', '10.0.0.1', 'fe80::1', 'fc00::1'])
      expect(refusedAddress(a, dev)).not.toBeNull();
  });
});

describe('URLs', () => {
  it.each([
    'https://127.0.0.1/hook',
    'https://[::1]/hook',
    'https://[::ffff:127.0.0.1]/hook',
    'https://169.254.169.254/latest/meta-data/',
    'https://[fd00:ec2::254]/',
    'https://[fe80::1]/',
    'https://0x7f000001/',
    'https://2130706433/',
    'https://017700000001/',
    'https://127.1/',
    'https://localhost/hook',
    'https://api.localhost/hook',
    'https://10.1.2.3:8443/',
    'https://[::]/',
  ])('%s is refused', (url) => {
    expect(refusedUrl(url, strict)).not.toBeNull();
  });

  it('https by default; http only to loopback with the dev flag; no credentials', () => {
    expect(refusedUrl('https://hooks.example.com/x', strict)).toBeNull();
    expect(refusedUrl('http://hooks.example.com/x', strict)).toMatch(/must be https/);
    expect(refusedUrl('http://hooks.example.com/x', dev)).toMatch(/must be https/);
    expect(refusedUrl('http://127.0.0.1:9/x', strict)).toMatch(/must be https/);
    expect(refusedUrl('http://127.0.0.1:9/x', dev)).toBeNull();
    expect(refusedUrl('http://[::1]:9/x', dev)).toBeNull();
    expect(refusedUrl('http://localhost:9/x', dev)).toBeNull();
    expect(refusedUrl('https://user:pw@hooks.example.com/', strict)).toMatch(/credentials/);
    expect(refusedUrl('ftp://hooks.example.com/', strict)).toMatch(/must be https/);
  });
});

describe('delivery: DNS checked once and pinned, redirects not followed (real sockets, stub resolver)', () => {
  let server: Server;
  let port: number;
  const hits: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.push(req.url!);
      req.resume();
      if (req.url === '/redirect') res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
      else res.writeHead(204).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => void server?.close());

  const stub = (answers: string[][]): Resolver & { calls: number } => {
    const fn = (async () => {
      const answer = answers[Math.min(fn.calls++, answers.length - 1)]!;
      return answer.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
    }) as unknown as Resolver & { calls: number };
    fn.calls = 0;
    return fn;
  };
  const post = (url: string, policy: { allowLoopback: boolean }, resolver: Resolver) =>
    postToTarget(url, '{}', { 'content-type': 'application/json' }, { policy, resolver, timeoutMs: 2000 });

  it('a name that resolves to loopback, link-local or private is refused before connecting', async () => {
    for (const answer of [
      ['127.0.0.1'],
      ['169.254.169.254'],
      ['10.0.0.7'],
      ['::1'],
      ['::ffff:127.0.0.1'],
      ['fd00::1'],
      ['fe80::1'],
    ]) {
      const before = hits.length;
      const resolver = stub([answer]);
      await expect(post(`https://hooks.test:${port}/x`, strict, resolver)).rejects.toBeInstanceOf(WebhookTargetError);
      expect([resolver.calls, hits.length]).toEqual([1, before]);
    }
  });

  it('an answer mixing a public and a private address is refused (no race between them)', async () => {
    await expect(
      postToTarget(
        `https://hooks.test:${port}/x`,
        '{}',
        {},
        { policy: strict, resolver: stub([['93.184.216.34', '127.0.0.1']]) },
      ),
    ).rejects.toThrow(/refused address: 127.0.0.1/);
  });

  it('DNS rebinding: the checked first answer is the one connected to; the name is not resolved again', async () => {
    const rebinding = stub([['127.0.0.1'], ['169.254.169.254']]); // a second lookup would get the metadata address
    const before = hits.length;
    expect(await post(`http://rebind.localhost:${port}/pinned`, dev, rebinding)).toEqual({ status: 204 });
    expect(rebinding.calls).toBe(1);
    expect(hits.slice(before)).toEqual(['/pinned']);
    // The rebinding answer itself, had it come first, is refused.
    await expect(post(`http://rebind.localhost:${port}/pinned`, dev, stub([['169.254.169.254']]))).rejects.toThrow(
      /link/i,
    );
  });

  it('a redirect is reported, not followed', async () => {
    const before = hits.length;
    expect(await post(`http://127.0.0.1:${port}/redirect`, dev, stub([['127.0.0.1']]))).toEqual({
      status: 302,
      location: 'http://169.254.169.254/latest/meta-data/',
    });
    expect(hits.slice(before)).toEqual(['/redirect']);
  });

  it('an IP-literal URL is checked without DNS', async () => {
    const resolver = stub([['127.0.0.1']]);
    await expect(post(`https://169.254.169.254/latest/meta-data/`, strict, resolver)).rejects.toThrow(/link/i);
    await expect(post(`http://[::ffff:127.0.0.1]:${port}/x`, strict, resolver)).rejects.toThrow(/https|loopback/);
    expect(resolver.calls).toBe(0);
  });
});

describe('runner intake without the dev flag', () => {
  let redis: RedisHandle;
  let intake: RunnerProcess;
  let client: JobClient;
  beforeAll(async () => {
    const [s3, redisHandle, dir] = await Promise.all([
      ensureRadosgw(),
      startRedis('abuse-ssrf'),
      freshDir('abuse-ssrf'),
    ]);
    redis = redisHandle;
    const modelDir = await writeTinyCheckpoint(join(dir, 'tiny'));
    const tag = runTag('abuse-ssrf');
    intake = await spawnRunner(
      runnerEnv(
        { modelDir, redisUrl: redis.url, s3, bucket: tag, queue: tag },
        { RUNNER_ROLES: 'intake', RUNNER_WEBHOOK_DEV_LOOPBACK: '0' },
      ),
    );
    client = new JobClient(intake.url);
  }, 240_000);
  afterAll(async () => {
    intake?.kill('SIGTERM');
    await intake?.exited;
    await redis?.stop();
  });

  const submit = (url: string) =>
    client.submit({ type: 'completion', model: 'tiny', prompt: 'hook', max_tokens: 1, webhook: { url } });

  it.each([
    'http://hooks.example.com/x',
    'https://127.0.0.1/x',
    'https://[::1]/x',
    'https://[::ffff:127.0.0.1]/x',
    'https://169.254.169.254/latest/meta-data/',
    'https://[fe80::1]/x',
    'https://[fc00::1]/x',
    'https://localhost/x',
    'https://192.168.0.10/x',
    'https://2130706433/x',
  ])('refuses %s with 400 invalid_webhook_url', async (url) => {
    const { status, body } = await submit(url);
    expect([status, (body as any).error?.code, (body as any).error?.param]).toEqual([
      400,
      'invalid_webhook_url',
      'webhook.url',
    ]);
  });

  it('accepts an https URL with a public name (checked again after DNS at delivery)', async () => {
    expect((await submit('https://hooks.example.com/deciserve')).status).toBe(202);
  });
});
