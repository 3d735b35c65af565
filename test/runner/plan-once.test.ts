// A long job is tokenized and its decimation resolved once, at intake, and the pass runs the stored plan: counted
// through the runner's real intake, BullMQ batch loop and pass against radosgw and Redis, with the pass in-process
// (the engine thread's code, without the thread) so the tokenizer's calls can be counted.
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generate } from '../../mamba/generate.ts';
import { inLoopMeter } from '../../mamba/token-budget.ts';
import type { TextTokenizer } from '../../mamba/tokenizer.ts';
import * as jobRequest from '../../protocol/job-request.ts';
import { prepareJob } from '../../protocol/prepare-job.ts';
import type { CompletionResult } from '../../protocol/results.ts';
import { signedHeaders } from '../../protocol/signing.ts';
import { configFromEnv } from '../../runner/config.ts';
import { loadEngine, readTokenizer } from '../../runner/engine/engine-factory.ts';
import { buildHttpApp } from '../../runner/intake/http-app.ts';
import { jobRoutes } from '../../runner/intake/intake.ts';
import { createLogger } from '../../runner/logger.ts';
import { createMetrics } from '../../runner/metrics.ts';
import { readModelDefaults } from '../../runner/model-defaults.ts';
import { BatchLoop } from '../../runner/pass/batch-loop.ts';
import { runPass } from '../../runner/pass/pass.ts';
import type { PassItem } from '../../runner/pass/pass-types.ts';
import { type QueueJobData, type StoredJob, unpackTokenIds } from '../../runner/store/jobs.ts';
import { JobIndex } from '../../runner/store/job-index.ts';
import { enqueue, queueNames, redisOptions } from '../../runner/store/queue.ts';
import { JobStore } from '../../runner/store/s3-store.ts';
import {
  ensureRadosgw,
  freshDir,
  type RedisHandle,
  runnerEnv,
  runTag,
  SECRET,
  startRedis,
  waitFor,
  writeTinyCheckpoint,
} from './harness.ts';

// Counts calls and passes them through to the real function (the only change to the module).
vi.mock('../../protocol/job-request.ts', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../protocol/job-request.ts')>();
  return { ...real, resolveDecimation: vi.fn(real.resolveDecimation) };
});
const resolveCalls = () => vi.mocked(jobRequest.resolveDecimation).mock.calls.length;

/** The tokenizer with a count of the characters it encoded (its own methods, through the prototype). */
function countingTokenizer(tokenizer: TextTokenizer) {
  const counted = Object.create(tokenizer) as TextTokenizer & { chars: number };
  counted.chars = 0;
  counted.encode = (text: string) => {
    counted.chars += text.length;
    return tokenizer.encode(text);
  };
  return counted;
}

const log = createLogger('silent');
let redis: RedisHandle;
let store: JobStore;
let queue: Queue<QueueJobData>;
let deadQueue: Queue;
let indexRedis: Redis;
let worker: Worker<QueueJobData>;
let loop: BatchLoop;
let looping: Promise<void>;
let app: ReturnType<typeof buildHttpApp>;
let intakeTokenizer: ReturnType<typeof countingTokenizer>;
let passTokenizer: ReturnType<typeof countingTokenizer>;
let config: ReturnType<typeof configFromEnv>;
let model: Awaited<ReturnType<typeof readModelDefaults>>;
let reference: Awaited<ReturnType<typeof loadEngine>>;
const passes: PassItem[][] = [];

beforeAll(async () => {
  const [s3, redisHandle, dir] = await Promise.all([ensureRadosgw(), startRedis('plan-once'), freshDir('plan-once')]);
  redis = redisHandle;
  const modelDir = await writeTinyCheckpoint(join(dir, 'tiny'));
  const tag = runTag('plan-once');
  config = configFromEnv(
    runnerEnv(
      { modelDir, redisUrl: redis.url, s3, bucket: tag, queue: tag },
      { RUNNER_TRAIN_LEN: '64', RUNNER_MAX_PROMPT_TOKENS: '20000' },
    ),
  );
  const metrics = createMetrics();
  store = JobStore.fromConfig(config, log, metrics);
  await store.ensureBucket();
  const names = queueNames(config.queueName);
  queue = new Queue<QueueJobData>(names.jobs, { connection: redisOptions(redis.url, { failFast: true }) });
  deadQueue = new Queue(names.dead, { connection: redisOptions(redis.url, { failFast: true }) });
  reference = await loadEngine('reference', modelDir);
  model = await readModelDefaults(modelDir, reference.config.nLayer, config.limits.trainLen);
  intakeTokenizer = countingTokenizer(await readTokenizer(modelDir));
  passTokenizer = countingTokenizer(reference.tokenizer);
  indexRedis = new Redis(redis.url);
  const jobs = jobRoutes({
    config,
    store,
    queue,
    index: new JobIndex(indexRedis, config.queueName),
    nonces: { claim: async () => true },
    meter: inLoopMeter(intakeTokenizer),
    model,
    metrics,
    log,
  });
  app = buildHttpApp({ metrics, readiness: async () => ({ ready: true, checks: {} }), jobs });
  worker = new Worker<QueueJobData>(names.jobs, null, {
    connection: redisOptions(redis.url, { failFast: false }),
    autorun: false,
    lockDuration: config.jobs.lockMs,
  });
  await worker.waitUntilReady();
  const loaded = { ...reference, tokenizer: passTokenizer };
  const ctx = { modelId: config.modelId, model, modelDir };
  const engine = {
    engineName: loaded.engine.name,
    // structuredClone: what crossing to the engine thread does to the items
    run: (items: PassItem[]) => {
      passes.push(items);
      return runPass(loaded, structuredClone(items), ctx);
    },
  };
  const webhooks = { jobFinished: async () => {} };
  loop = new BatchLoop({ config, worker, engine, store, deadQueue, webhooks, metrics, log });
  looping = loop.run();
}, 240_000);

afterAll(async () => {
  loop?.stop();
  await looping;
  await worker?.close();
  await Promise.all([queue?.close(), deadQueue?.close()]);
  indexRedis?.disconnect();
  await redis?.stop();
});

async function submit(job: Record<string, unknown>): Promise<{ status: number; id: string }> {
  const body = JSON.stringify(job);
  const headers = await signedHeaders(SECRET, { method: 'POST', path: '/jobs', body });
  const res = await app.request('/jobs', {
    method: 'POST',
    body,
    headers: { ...headers, 'content-type': 'application/json' },
  });
  return { status: res.status, id: ((await res.json()) as { id: string }).id };
}

const result = (id: string) =>
  waitFor(`result of ${id}`, () => store.getResult(id) as Promise<CompletionResult | null>, 60_000);

describe('one long job', () => {
  it('is tokenized and its decimation resolved exactly once, at intake; the pass runs the stored plan', async () => {
    // ~6,000 tokens on the byte-level tokenizer, far past the training length (64): auto decimation is on.
    const prompt = 'The quick brown fox jumps over the lazy dog 0123456789. '.repeat(110);
    const request = { type: 'completion', model: config.modelId, prompt, max_tokens: 4 };
    const before = { intake: intakeTokenizer.chars, pass: passTokenizer.chars, resolve: resolveCalls() };

    const { status, id } = await submit(request);
    expect(status).toBe(202);
    const atIntake = { intake: intakeTokenizer.chars, resolve: resolveCalls() };
    const stored = await result(id);

    // The prompt's characters went through the tokenizer once (in safe slices) at intake, and never in the pass.
    expect(atIntake.intake - before.intake).toBe(prompt.length);
    expect(passTokenizer.chars - before.pass).toBe(0);
    expect(atIntake.resolve - before.resolve).toBe(1);
    expect(resolveCalls() - before.resolve).toBe(1);
    // The pass got the plan: ids packed (u16 for this vocabulary), decimation resolved.
    const item = passes.flat().find((it) => it.id === id)!;
    expect(item.plan?.ids.startsWith('u16:')).toBe(true);
    const input = (await store.getInput(id)) as StoredJob;
    expect(unpackTokenIds(input.plan!.ids)).toEqual(intakeTokenizer.encode(prompt));
    expect(input.plan!.decimation).not.toBeNull();
    expect(stored.deciserve.decimation.config).toEqual(input.plan!.decimation);

    // The same answer as preparing it the old way (tokenize + resolve in the pass) and running it directly.
    const parsed = jobRequest.jobRequestSchema({ maxNewTokens: 256, maxPromptChars: 1 << 20 }).parse(request);
    const prepared = prepareJob(reference.tokenizer, { id, request: parsed }, model);
    if (prepared.kind !== 'completion') throw new Error('expected a completion');
    const direct = await generate(reference.engine, reference.tokenizer, prepared.ids, prepared.options);
    expect(stored.choices[0]!.text).toBe(direct.text);
    expect(stored.usage.prompt_tokens).toBe(prepared.ids.length);
  }, 120_000);

  it('an input stored without a plan (accepted before intake planned jobs) still runs: the pass prepares it', async () => {
    const prompt = 'An older job, stored as the previous intake wrote it. '.repeat(4);
    const request = jobRequest
      .jobRequestSchema({ maxNewTokens: 256, maxPromptChars: 1 << 20 })
      .parse({ type: 'completion', model: config.modelId, prompt, max_tokens: 3 });
    const id = `job_${'legacy'.padEnd(26, '0')}`;
    const job: StoredJob = {
      id,
      created_at: Date.now(),
      request,
      request_sha256: 'x',
      prompt_tokens: prompt.length,
      cost_tokens: prompt.length + 3,
    };
    await store.putInputOnce(job);
    const before = passTokenizer.chars;
    await enqueue(queue, config, job);
    const stored = await result(id);
    expect(passTokenizer.chars - before).toBe(prompt.length);
    expect(stored.choices[0]!.text.length).toBeGreaterThan(0);
  }, 60_000);
});
