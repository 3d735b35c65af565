// Runner processes dying and sharing work: kill -9 mid-job, SIGTERM mid-pass, two runners on one queue.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  JobClient,
  ensureRadosgw,
  freshDir,
  runTag,
  runnerEnv,
  spawnRunner,
  startRedis,
  waitFor,
  writeTinyCheckpoint,
  type RedisHandle,
  type RunnerProcess,
  type S3Env,
} from './harness.ts';

let redis: RedisHandle;
let s3: S3Env;
let modelDir: string;
const started: RunnerProcess[] = [];

// ~15K tokens: over a second of prefill for the tiny model, long enough to be caught mid-job.
const LONG_PROMPT = 'word '.repeat(5_000);

beforeAll(async () => {
  const [s3Env, redisHandle, dir] = await Promise.all([
    ensureRadosgw(),
    startRedis('recovery'),
    freshDir('runner-recovery'),
  ]);
  s3 = s3Env;
  redis = redisHandle;
  modelDir = await writeTinyCheckpoint(join(dir, 'tiny'));
}, 240_000);

afterAll(async () => {
  for (const r of started) r.kill('SIGKILL');
  await Promise.all(started.map((r) => r.exited));
  await redis?.stop();
});

async function runner(tag: string, extra: Record<string, string> = {}): Promise<RunnerProcess> {
  const r = await spawnRunner(runnerEnv({ modelDir, redisUrl: redis.url, s3, bucket: tag, queue: tag }, extra));
  started.push(r);
  return r;
}

const passStartOf = (r: RunnerProcess, id: string) =>
  r.logs.filter((l) => l.msg === 'pass start' && (l.jobs as string[]).includes(id));
const completionsOf = (r: RunnerProcess, id: string) => r.logs.filter((l) => l.msg === 'job completed' && l.id === id);
/** The result is visible in S3 a moment before the runner marks the job completed and logs it. */
const loggedCompletion = (runners: RunnerProcess[], id: string) =>
  waitFor(`completion log of ${id}`, () => runners.some((r) => completionsOf(r, id).length > 0));

describe('runner crashes and shutdowns', () => {
  it('kill -9 during a job: a restarted runner completes it, exactly once', async () => {
    const tag = runTag('kill9');
    const a = await runner(tag);
    const client = new JobClient(a.url);
    const { body } = await client.submit({
      type: 'completion',
      model: 'tiny',
      prompt: LONG_PROMPT,
      max_tokens: 4,
      decimation: 'off',
    });
    await a.waitForLog((l) => l.msg === 'pass start' && (l.jobs as string[]).includes(body.id));
    a.kill('SIGKILL');
    expect(await a.exited).toBeNull(); // killed by the signal
    const b = await runner(tag);
    const view = await new JobClient(b.url).waitDone(body.id, 90_000);
    expect(view.status).toBe('succeeded');
    await loggedCompletion([b], body.id);
    expect(completionsOf(a, body.id)).toHaveLength(0);
    expect(completionsOf(b, body.id)).toHaveLength(1);
    expect(completionsOf(b, body.id)[0]!.outcome).toBe('succeeded');
    expect(
      b.logs.some((l) => l.msg === 'stalled job moved back to the queue' && l.id === body.id) ||
        passStartOf(b, body.id).length === 1,
    ).toBe(true);
    const result = await client.result<{ usage: { prompt_tokens: number } }>(view);
    expect(result.usage.prompt_tokens).toBe(body.prompt_tokens);
    b.kill('SIGTERM');
    expect(await b.exited).toBe(0);
  }, 120_000);

  it('with the default lock settings, a job killed mid-pass is done within 35 s of the kill -9 (issue #13)', async () => {
    const tag = runTag('kill9-defaults');
    // The production lock duration and stalled-check interval (runner/config.ts), not the tests' short ones.
    const env: Record<string, string> = runnerEnv({ modelDir, redisUrl: redis.url, s3, bucket: tag, queue: tag });
    delete env.RUNNER_LOCK_MS;
    delete env.RUNNER_STALLED_INTERVAL_MS;
    const a = await spawnRunner(env);
    started.push(a);
    const client = new JobClient(a.url);
    const { body } = await client.submit({
      type: 'completion',
      model: 'tiny',
      prompt: LONG_PROMPT,
      max_tokens: 4,
      decimation: 'off',
    });
    await a.waitForLog((l) => l.msg === 'pass start' && (l.jobs as string[]).includes(body.id));
    a.kill('SIGKILL');
    const killedAt = Date.now();
    await a.exited;
    const b = await spawnRunner(env); // what a process manager does: start it again
    started.push(b);
    const view = await new JobClient(b.url).waitDone(body.id, 60_000);
    const doneAfterS = (Date.now() - killedAt) / 1000;
    expect(view.status).toBe('succeeded');
    // Recovered by the stalled check once the dead runner's lock lapsed (not left for a reconciler or an operator).
    await b.waitForLog((l) => l.msg === 'stalled job moved back to the queue' && l.id === body.id);
    expect(doneAfterS).toBeLessThanOrEqual(35);
    await loggedCompletion([b], body.id);
    expect(completionsOf(b, body.id)).toHaveLength(1);
    b.kill('SIGTERM');
    expect(await b.exited).toBe(0);
  }, 120_000);

  it('SIGTERM finishes the running pass, takes nothing new, and exits 0', async () => {
    const tag = runTag('sigterm');
    const a = await runner(tag, { RUNNER_BATCH_MAX_JOBS: '1' });
    const client = new JobClient(a.url);
    const first = await client.submit({
      type: 'completion',
      model: 'tiny',
      prompt: LONG_PROMPT,
      max_tokens: 2,
      decimation: 'off',
    });
    const second = await client.submit({ type: 'completion', model: 'tiny', prompt: 'second job', max_tokens: 2 });
    await a.waitForLog((l) => l.msg === 'pass start' && (l.jobs as string[]).includes(first.body.id));
    expect(await client.get(first.body.id)).toMatchObject({ status: 'running', attempts: 1 }); // the attempt under way counts
    expect(await client.get(second.body.id)).toMatchObject({ status: 'queued', attempts: 0 });
    a.kill('SIGTERM');
    expect(await a.exited).toBe(0);
    expect(completionsOf(a, first.body.id)).toHaveLength(1);
    expect(passStartOf(a, second.body.id)).toHaveLength(0);
    const b = await runner(tag);
    const view = await new JobClient(b.url).waitDone(second.body.id);
    expect(view.status).toBe('succeeded');
    await loggedCompletion([b], second.body.id);
    expect(completionsOf(b, second.body.id)).toHaveLength(1);
    b.kill('SIGTERM');
    await b.exited;
  }, 120_000);

  it('two runners share one queue and never run a job twice', async () => {
    const tag = runTag('pair');
    const extra = { RUNNER_BATCH_MAX_JOBS: '2' };
    const [a, b] = await Promise.all([runner(tag, extra), runner(tag, extra)]);
    const client = new JobClient(a.url);
    const prompt = 'word '.repeat(700);
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const { body } = await (i % 2 ? new JobClient(b.url) : client).submit({
        type: 'completion',
        model: 'tiny',
        prompt: `${i} ${prompt}`,
        max_tokens: 2,
        decimation: 'off',
      });
      ids.push(body.id);
    }
    for (const id of ids) expect((await client.waitDone(id, 90_000)).status).toBe('succeeded');
    for (const id of ids) await loggedCompletion([a, b], id);
    for (const id of ids) {
      // Each job entered exactly one engine pass on exactly one runner.
      expect(passStartOf(a, id).length + passStartOf(b, id).length, id).toBe(1);
      expect(completionsOf(a, id).length + completionsOf(b, id).length, id).toBe(1);
    }
    expect(a.succeeded().length).toBeGreaterThan(0);
    expect(b.succeeded().length).toBeGreaterThan(0);
    expect(a.succeeded().length + b.succeeded().length).toBe(12);
    a.kill('SIGTERM');
    b.kill('SIGTERM');
    await Promise.all([a.exited, b.exited]);
  }, 180_000);

  it('one runner drives several engine threads (one per GPU), running passes side by side', async () => {
    const tag = runTag('threads');
    const r = await runner(tag, { RUNNER_ENGINE_THREADS: '2', RUNNER_BATCH_MAX_JOBS: '1' });
    const client = new JobClient(r.url);
    const ids: string[] = [];
    for (let i = 0; i < 2; i++)
      ids.push(
        (
          await client.submit({
            type: 'completion',
            model: 'tiny',
            prompt: `${i} ${'word '.repeat(2500)}`,
            max_tokens: 2,
            decimation: 'off',
          })
        ).body.id,
      );
    for (const id of ids) expect((await client.waitDone(id, 90_000)).status).toBe('succeeded');
    await loggedCompletion([r], ids[1]!);
    await loggedCompletion([r], ids[0]!);
    const events = r.logs.filter((l) => l.msg === 'pass start' || l.msg === 'pass done');
    // Both passes started before either finished, on different devices.
    expect(events.slice(0, 2).map((l) => l.msg)).toEqual(['pass start', 'pass start']);
    expect(new Set(events.slice(0, 2).map((l) => l.device))).toEqual(new Set([0, 1]));
    r.kill('SIGTERM');
    expect(await r.exited).toBe(0);
  }, 120_000);
});
