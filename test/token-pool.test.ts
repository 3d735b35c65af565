// The tokenizer pool (mamba/token-pool.ts): the same ids as tokenizing in the event loop, in the order given, however
// uneven the prompts; a prompt that throws fails alone as a 400-class error; a dead thread fails only its call; close
// leaves no thread behind; and the calling thread's event loop stays nearly idle while the pool works.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { PromptTokenizeError, TokenPool } from '../mamba/token-pool.ts';
import { loadTokenizer } from '../mamba/tokenizer.ts';
import { REPO } from './runner/harness.ts';

const MODEL = join(REPO, 'models/deciserve-mamba');
const tokenizerPath = join(MODEL, 'tokenizer.json');
const inLoop = loadTokenizer(JSON.parse(readFileSync(tokenizerPath, 'utf8')));
const haystack = readFileSync(join(MODEL, 'haystack.txt'), 'utf8');
const pool = new TokenPool({ tokenizerPath }, 3);
afterAll(() => pool.close());

/** Prompts of very different sizes (40 KB first, a few bytes last), so later batches finish before earlier ones. */
function unevenPrompts(offset: number): string[] {
  return [40_000, 12, 3_000, 1, 25_000, 700, 9, 5_000, 2].map((n, i) =>
    haystack.slice(offset + i * 50_000, offset + i * 50_000 + n),
  );
}

/** OS threads of this process (Linux): every worker thread is one more while it lives. */
const osThreads = () => readdirSync('/proc/self/task').length;

describe('TokenPool', () => {
  it('answers in the order given, with the ids of the in-loop tokenizer, for calls running side by side', async () => {
    const calls = [unevenPrompts(0), unevenPrompts(7), ['', 'a', ' the end'.repeat(2000)]];
    const got = await Promise.all(calls.map((texts) => pool.encode(texts)));
    calls.forEach((texts, c) => expect(got[c]).toEqual(texts.map((t) => inLoop.encode(t))));
    expect(pool.liveThreads).toBe(3);
    expect(await pool.encode([])).toEqual([]);
  });

  it('hands every batch of a call to the threads at once: nothing waits for the calling thread to come back', async () => {
    // The engine thread calls encode for pass N+1, then blocks in a synchronous GPU call for pass N: batches left
    // waiting for a reply would sit idle all that time (what the first H100 run showed: 86 ms a pass, not 66).
    const texts = Array.from({ length: 32 }, (_, i) => haystack.slice(i * 4000, (i + 1) * 4000));
    const pending = pool.encode(texts);
    const slots = (pool as unknown as { slots: Array<{ outstanding: Map<number, { texts: string[] }> } | null> }).slots;
    const handedOut = slots.flatMap((slot) => [...(slot?.outstanding.values() ?? [])]);
    expect(handedOut.flatMap((batch) => batch.texts)).toHaveLength(texts.length); // all of them, before any answer
    expect(new Set(slots.map((slot) => slot?.outstanding.size ?? 0)).has(0)).toBe(false); // spread over every thread
    expect(await pending).toEqual(texts.map((t) => inLoop.encode(t)));
  });

  it('a prompt the tokenizer throws on fails alone, as a 400-class PromptTokenizeError at its index', async () => {
    const texts = ['In the beginning', undefined as unknown as string, 'God created'];
    const [a, bad, c] = await pool.encode(texts);
    expect(a).toEqual(inLoop.encode('In the beginning'));
    expect(c).toEqual(inLoop.encode('God created'));
    expect(bad).toBeInstanceOf(PromptTokenizeError);
    expect(bad).toMatchObject({
      status: 400,
      index: 1,
      message: expect.stringMatching(/^prompt cannot be tokenized: /),
    });
  });

  it('keeps the calling event loop free: a fraction of the busy time of tokenizing in it', async () => {
    // Three rounds, each on text neither side has seen (the tokenizer caches words), busy time summed per side.
    let [inLoopBusy, poolBusy] = [0, 0];
    for (let round = 0; round < 3; round++) {
      const at = 1_000_000 + round * 300_000;
      const fresh = (side: number) =>
        Array.from({ length: 32 }, (_, i) =>
          haystack.slice(at + side * 150_000 + i * 4000, at + side * 150_000 + (i + 1) * 4000),
        );
      let before = performance.eventLoopUtilization();
      for (const t of fresh(0)) inLoop.encode(t);
      inLoopBusy += performance.eventLoopUtilization(before).active;
      before = performance.eventLoopUtilization();
      await pool.encode(fresh(1));
      poolBusy += performance.eventLoopUtilization(before).active;
    }
    expect(inLoopBusy).toBeGreaterThan(150); // 3 × 32 × 1K tokens is real work...
    // ...that the pool takes off the event loop (what is left is copying, and the OS preempting this thread while
    // the pool's threads share the cores with it: about a third of the in-loop time on a loaded 2-core machine).
    expect(poolBusy).toBeLessThan(inLoopBusy / 2);
  });

  it('a thread that dies fails the call it was serving; the next call runs on a new thread', async () => {
    const solo = new TokenPool({ tokenizerPath }, 1);
    await solo.start();
    const pending = solo.encode([' the end'.repeat(200_000)]);
    await sleep(20); // the batch is on the thread
    // No public way to kill a thread: reach the one worker, as a crash (out of memory) would end it.
    await (
      solo as unknown as { slots: Array<{ worker: { terminate(): Promise<number> } }> }
    ).slots[0]!.worker.terminate();
    await expect(pending).rejects.toThrow(/token thread exited/);
    expect(await solo.encode(['a b c'])).toEqual([inLoop.encode('a b c')]);
    await solo.close();
  });

  it('close stops every thread: none left in the process, and later calls are refused', async () => {
    await sleep(100); // threads of earlier tests have finished exiting
    const baseline = osThreads();
    const four = new TokenPool({ tokenizerPath }, 4);
    await four.start();
    expect(four.liveThreads).toBe(4);
    expect(osThreads()).toBeGreaterThanOrEqual(baseline + 4);
    const refused = expect(four.encode(unevenPrompts(3))).rejects.toThrow(/token thread exited|closed/);
    await four.close();
    await refused;
    expect(four.liveThreads).toBe(0);
    for (let i = 0; i < 50 && osThreads() > baseline; i++) await sleep(20); // the OS reaps exited threads shortly after
    expect(osThreads()).toBe(baseline);
    await expect(four.encode(['a'])).rejects.toThrow(/closed/);
  });
});
