// runner/webhooks/webhooks.ts in-process on real Redis (BullMQ) and radosgw: a finished job's event is POSTed, signed, to the
// job's URL; a failing receiver (5xx or a redirect) is retried with backoff; one delivery per job id; no URL, no event.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Queue, type Worker } from 'bullmq';
import { pino } from 'pino';
import { Webhook, WebhookVerificationError } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFromEnv } from '../../runner/config.ts';
import type { StoredJob } from '../../runner/store/jobs.ts';
import { createMetrics } from '../../runner/metrics.ts';
import type { JobResult } from '../../protocol/results.ts';
import { redisOptions, type JobQueue } from '../../runner/store/queue.ts';
import { JobStore } from '../../runner/store/s3-store.ts';
import { startWebhookWorker, WebhookQueue } from '../../runner/webhooks/webhooks.ts';
import { ensureRadosgw, runTag, SECRET, startRedis, waitFor, WEBHOOK_SECRET, type RedisHandle } from './harness.ts';

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}
let redis: RedisHandle;
let server: Server;
let base: string;
let store: JobStore;
let jobs: JobQueue;
let hooks: Queue<{ id: string; url: string }>;
let worker: Worker;
const metrics = createMetrics();
/** The runner's warnings, as JSON lines (a real pino logger writing to memory). */
const warnings: Array<Record<string, unknown>> = [];
const log = pino(
  { level: 'warn' },
  { write: (line: string) => void warnings.push(JSON.parse(line) as Record<string, unknown>) },
);
const received: Received[] = [];
/** Status codes the receiver answers per path, in turn (then 200). */
const script = new Map<string, number[]>();

beforeAll(async () => {
  const [s3, redisHandle] = await Promise.all([ensureRadosgw(), startRedis('webhooks')]);
  redis = redisHandle;
  const tag = runTag('webhooks');
  store = JobStore.fromConfig(
    configFromEnv({
      RUNNER_HMAC_SECRET: SECRET,
      RUNNER_WEBHOOK_SECRET: WEBHOOK_SECRET,
      RUNNER_MODEL_DIR: '/m',
      ...s3,
      S3_BUCKET: tag,
    }),
    log,
    metrics,
  );
  await store.ensureBucket();
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ path: req.url!, headers: req.headers, body: Buffer.concat(chunks) });
      const status = script.get(req.url!)?.shift() ?? (req.url!.startsWith('/hook/no-content') ? 204 : 200);
      res.writeHead(status, status === 302 ? { location: `${base}/elsewhere` } : {}).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const connection = redisOptions(redis.url, { failFast: false });
  jobs = new Queue(tag, { connection });
  hooks = new Queue(`${tag}-webhooks`, { connection });
  worker = startWebhookWorker(`${tag}-webhooks`, connection, {
    store,
    queue: jobs,
    secret: WEBHOOK_SECRET,
    policy: { allowLoopback: true },
    metrics,
    log,
  });
}, 300_000);

afterAll(async () => {
  await worker?.close();
  await Promise.all([jobs?.close(), hooks?.close()]);
  server?.close();
  await redis?.stop();
});

/** A finished job as S3 holds it after the runner stored its result (no longer in Redis). */
async function finishedJob(id: string): Promise<void> {
  const input: StoredJob = {
    id,
    created_at: 1_700_000_000_000,
    request: { type: 'completion', model: 'm', prompt: 'p' } as StoredJob['request'],
    request_sha256: 'x',
    prompt_tokens: 3,
    cost_tokens: 5,
  };
  await store.putInputOnce(input);
  await store.putResultOnce(id, { id, object: 'text_completion' } as unknown as JobResult);
}
const deliveries = (path: string) => received.filter((r) => r.path === path);
const counter = async (outcome: string) =>
  (await metrics.webhooks.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;

describe('webhooks', () => {
  it('POSTs the job.succeeded event with the job view, signed with the webhook secret (Standard Webhooks)', async () => {
    const id = `job_hook_${Date.now()}`;
    await finishedJob(id);
    const delivered = await counter('delivered');
    await new WebhookQueue(hooks, log).jobFinished(id, `${base}/hook/a?tenant=1`);
    const [hit] = await waitFor(
      'delivery',
      () => deliveries('/hook/a?tenant=1').length > 0 && deliveries('/hook/a?tenant=1'),
    );
    const h = hit!.headers as Record<string, string>;
    expect(h['content-type']).toBe('application/json');
    expect(h['user-agent']).toBe('deciserve-runner');
    // Standard Webhooks: the official verifier accepts it with the webhook secret, and only with it.
    expect(new Webhook(WEBHOOK_SECRET).verify(hit!.body.toString(), h)).toMatchObject({ id: `evt_${id}` });
    expect(h['webhook-id']).toBe(`evt_${id}`);
    expect(() => new Webhook(WEBHOOK_SECRET).verify(hit!.body.toString().replace('succeeded', 'failed'), h)).toThrow(
      WebhookVerificationError,
    );
    expect(() =>
      new Webhook(`whsec_${Buffer.from(SECRET).toString('base64')}`).verify(hit!.body.toString(), h),
    ).toThrow(WebhookVerificationError);
    const event = JSON.parse(hit!.body.toString()) as Record<string, unknown>;
    expect(event).toMatchObject({
      id: `evt_${id}`,
      object: 'event',
      type: 'job.succeeded',
      data: { id, status: 'succeeded', prompt_tokens: 3 },
    });
    expect(Math.abs((event.created as number) - Date.now() / 1000)).toBeLessThan(60);
    expect((event.data as { result_url: string }).result_url).toContain(`results/${id}.json`);
    await waitFor('delivered metric', async () => (await counter('delivered')) === delivered + 1);
    const queued = (await hooks.getJob(id))!;
    expect(queued.name).toBe('deliver');
    expect(queued.data).toEqual({ id, url: `${base}/hook/a?tenant=1` });
    expect(queued.opts).toMatchObject({
      attempts: 8,
      backoff: { type: 'exponential', delay: 1000 },
      removeOnComplete: { age: 3600 },
      removeOnFail: { age: 7 * 86400 },
    });
  });

  it('a 204 with no body counts as delivered, once', async () => {
    const id = `job_204_${Date.now()}`;
    await finishedJob(id);
    const delivered = await counter('delivered');
    await new WebhookQueue(hooks, log).jobFinished(id, `${base}/hook/no-content`);
    await waitFor('delivered metric', async () => (await counter('delivered')) === delivered + 1);
    expect(deliveries('/hook/no-content')).toHaveLength(1);
    expect(warnings.filter((w) => w.id === id)).toEqual([]);
  });

  it('a receiver answering 500, then a redirect, is retried until it answers 2xx; the redirect is not followed', async () => {
    const id = `job_retry_${Date.now()}`;
    await finishedJob(id);
    script.set('/hook/flaky', [500, 302]);
    const retries = await counter('retry');
    await new WebhookQueue(hooks, log).jobFinished(id, `${base}/hook/flaky`);
    await waitFor('third delivery', () => deliveries('/hook/flaky').length >= 3, 20_000);
    expect(deliveries('/elsewhere')).toHaveLength(0);
    expect(await counter('retry')).toBe(retries + 2);
    const failures = warnings.filter((w) => w.id === id && w.msg === 'webhook delivery failed').map((w) => w.err);
    expect(failures).toEqual(['webhook answered 500', 'webhook answered 302 (redirects are not followed)']);
    await new Promise((r) => setTimeout(r, 300));
    expect(deliveries('/hook/flaky')).toHaveLength(3); // done after the 200
  }, 30_000);

  it('one delivery per job id however often it finishes; none without a URL; a job nobody stored fails its delivery', async () => {
    const id = `job_once_${Date.now()}`;
    await finishedJob(id);
    const q = new WebhookQueue(hooks, log);
    await Promise.all([q.jobFinished(id, `${base}/hook/once`), q.jobFinished(id, `${base}/hook/once`)]);
    await q.jobFinished(`${id}_none`, undefined);
    await waitFor('delivery', () => deliveries('/hook/once').length > 0);
    await new Promise((r) => setTimeout(r, 300));
    expect(deliveries('/hook/once')).toHaveLength(1);
    expect(await hooks.getJob(`${id}_none`)).toBeUndefined();

    await q.jobFinished('job_missing', `${base}/hook/missing`);
    await waitFor('failed attempt', async () => (await hooks.getJob('job_missing'))?.failedReason);
    expect((await hooks.getJob('job_missing'))!.failedReason).toBe('job job_missing not found');
    expect(deliveries('/hook/missing')).toHaveLength(0);
  });

  it('a refused target (link-local metadata address) fails at once, without retries or a connection', async () => {
    const id = `job_ssrf_${Date.now()}`;
    await finishedJob(id);
    const refused = await counter('refused');
    await new WebhookQueue(hooks, log).jobFinished(id, 'http://169.254.169.254/latest/meta-data/');
    const failed = await waitFor('refused delivery', async () =>
      (await hooks.getJob(id))?.finishedOn ? hooks.getJob(id) : null,
    );
    expect([failed!.attemptsMade, failed!.failedReason]).toEqual([
      1,
      expect.stringMatching(/webhook URL refused: .*169\.254\.169\.254 is a linkLocal address|must be https/),
    ]);
    expect(await counter('refused')).toBe(refused + 1);
  });

  it("a queue that cannot take the event does not throw into the job's completion", async () => {
    const closed = new Queue('closed-webhooks', { connection: redisOptions(redis.url, { failFast: true }) });
    await closed.close();
    await expect(new WebhookQueue(closed, log).jobFinished('job_x', `${base}/hook/x`)).resolves.toBeUndefined();
    expect(warnings.find((w) => w.id === 'job_x')).toMatchObject({
      msg: 'could not queue webhook',
      err: expect.any(String),
    });
  });
});
