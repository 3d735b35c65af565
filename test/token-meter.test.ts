// The token meter's thread (mamba/token-meter.ts): the same verdicts as measuring in the event loop, while the
// event loop itself stays nearly idle (issue #13: a token bomb must not hold /healthz).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterAll, describe, expect, it } from 'vitest';
import { inLoopMeter, type PromptMeter } from '../mamba/token-budget.ts';
import { loadTokenizer } from '../mamba/tokenizer.ts';
import { ThreadMeter } from '../mamba/token-meter.ts';
import { REPO } from './runner/harness.ts';

const MODEL = join(REPO, 'models/deciserve-mamba');
const tokenizerPath = join(MODEL, 'tokenizer.json');
const inLoop = inLoopMeter(loadTokenizer(JSON.parse(readFileSync(tokenizerPath, 'utf8'))));
const thread = new ThreadMeter({ tokenizerPath });
afterAll(() => thread.close());

const CASES: Array<[string, string[]]> = [
  ['digits past the limit', ['7'.repeat(200_000)]],
  ['one long run', ['e' + '\u0301'.repeat(9000)]],
  ['prose past the limit when counted', [' the end'.repeat(70_000)]],
  [
    'prompt + continuation under it',
    ['In the beginning God created the heaven and the earth.', ' And the earth was without form'],
  ],
  ['empty', ['']],
];

/** Main-thread event-loop busy time (ms) while `meter` measures 5 prose bombs at once. */
async function busyMs(meter: PromptMeter): Promise<number> {
  const bomb = [' the end'.repeat(70_000)];
  const before = performance.eventLoopUtilization();
  await Promise.all(Array.from({ length: 5 }, () => meter.measure(bomb, 131_072)));
  return performance.eventLoopUtilization(before).active;
}

describe('ThreadMeter', () => {
  it.each(CASES)('%s: the same verdict as in the event loop', async (_, texts) => {
    expect(await thread.measure(texts, 131_072)).toEqual(await inLoop.measure(texts, 131_072));
  });

  it('with keepIds, hands back the token ids it counted: each text encoded whole, moved off the thread', async () => {
    const tokenizer = loadTokenizer(JSON.parse(readFileSync(tokenizerPath, 'utf8')));
    const texts = [`${'In the beginning God created the heaven and the earth. 1984 '.repeat(400)}Where?`, ' Nowhere.'];
    const cost = await thread.measure(texts, 131_072, { keepIds: true });
    if (!cost.ok) throw new Error(`refused: ${cost.reason}`);
    expect(cost.ids!.map((ids) => Array.from(ids))).toEqual(texts.map((t) => tokenizer.encode(t)));
    expect(cost.tokens).toBe(cost.ids![0]!.length + cost.ids![1]!.length);
    expect(await thread.measure(texts, 131_072)).toEqual({ ok: true, tokens: cost.tokens }); // no ids unless asked
  });

  it('with keepIds, a text cut by force (a run past MAX_RUN_CHARS) still gets its exact ids, though its count is an estimate', async () => {
    const tokenizer = loadTokenizer(JSON.parse(readFileSync(tokenizerPath, 'utf8')));
    const texts = [`Before ${'abcdefghij'.repeat(1200)} after`];
    const cost = await thread.measure(texts, 131_072, { keepIds: true });
    if (!cost.ok) throw new Error(`refused: ${cost.reason}`);
    expect(cost.estimated).toBe(true);
    expect(Array.from(cost.ids![0]!)).toEqual(tokenizer.encode(texts[0]!));
  });

  it('keeps the event loop free: a fraction of the busy time of counting in it', async () => {
    await thread.measure(['warm up'], 10);
    const inLoopBusy = await busyMs(inLoop);
    const threadBusy = await busyMs(thread);
    expect(inLoopBusy).toBeGreaterThan(100); // five 140K-token counts are real work...
    expect(threadBusy).toBeLessThan(inLoopBusy / 5); // ...that the thread takes off the event loop
  });

  it('a dead thread fails its pending calls, and the next call starts a new one', async () => {
    const meter = new ThreadMeter({ tokenizerPath });
    await meter.measure(['warm up'], 10);
    const pending = meter.measure([' the end'.repeat(70_000)], 131_072);
    await meter.close();
    await expect(pending).rejects.toThrow(/token thread exited/);
    expect(await meter.measure(['a b c'], 10)).toEqual({ ok: true, tokens: 3 });
    await meter.close();
  });
});
