// A pass tokenized on the engine thread's tokenizer pool (runner/pass/prepare-pass.ts + mamba/token-pool.ts) gives
// the same outcomes as one tokenized on the engine thread; a prompt the tokenizer rejects fails alone as invalid_job
// (not retried); a pool that fails under a pass fails its jobs retryably; passes started side by side (pass N+1
// tokenized while pass N runs) each get their own answers. Reference engine on the tiny-random checkpoint.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sequentialEngine } from '../../mamba/engine-base.ts';
import { TokenPool } from '../../mamba/token-pool.ts';
import { jobRequestSchema } from '../../protocol/job-request.ts';
import { loadEngine } from '../../runner/engine/engine-factory.ts';
import { readModelDefaults } from '../../runner/model-defaults.ts';
import { runPass } from '../../runner/pass/pass.ts';
import type { LoadedEngine, PassContext, PassHooks, PassItem, PassOutcome } from '../../runner/pass/pass-types.ts';
import { REPO } from './harness.ts';

const MODEL = join(REPO, 'test/fixtures/tiny-random');
const schema = jobRequestSchema({ maxPromptChars: 100_000, maxNewTokens: 64 });
const text = 'In the beginning God created the heaven and the earth. And the earth was without form, and void. ';

function item(id: string, request: Record<string, unknown>): PassItem {
  return { id, request: schema.parse({ model: 'tiny-random', ...request }), createdAt: 1_700_000_000_000 };
}

const pool = new TokenPool({ tokenizerPath: join(MODEL, 'tokenizer.json') }, 2);
const hooks: PassHooks = { tokenize: (texts) => pool.encode(texts) };
let loaded: LoadedEngine;
let ctx: PassContext;
beforeAll(async () => {
  loaded = await loadEngine('reference', MODEL);
  ctx = { modelId: 'tiny-random', model: await readModelDefaults(MODEL, loaded.config.nLayer) };
  await pool.start();
});
afterAll(() => pool.close());

describe('a pass on the tokenizer pool', () => {
  it('the same outcomes as tokenizing on the engine thread; a prompt that cannot be tokenized fails alone', async () => {
    const bad: PassItem = {
      id: 'bad',
      request: { ...item('x', { type: 'completion', prompt: 'x' }).request },
      createdAt: 1,
    };
    (bad.request as { prompt: unknown }).prompt = undefined; // past the schema: only the tokenizer can refuse it
    const items = [
      item('a', { type: 'completion', prompt: text.repeat(3), max_tokens: 6 }),
      bad,
      item('s', { type: 'score', prompt: text, continuation: 'And God saw the light.' }),
      item('c', { type: 'completion', prompt: 'And God said', max_tokens: 5, temperature: 0.9, seed: 7 }),
    ];
    const [onPool, here] = [await runPass(loaded, items, ctx, hooks), await runPass(loaded, items, ctx)];
    expect(onPool.map((o) => o.id)).toEqual(['a', 'bad', 's', 'c']);
    expect(onPool[1]).toMatchObject({
      ok: false,
      retryable: false,
      error: { code: 'invalid_job', message: expect.stringMatching(/^prompt cannot be tokenized/) },
    });
    // Outcomes match the engine-thread path except the refused prompt (which throws there before any engine work)
    // and the timings.
    const strip = (o: (typeof onPool)[number]) =>
      o.ok ? { ...o, stats: { ...o.stats, prefillMs: 0, decodeMs: 0 } } : o;
    for (const i of [0, 2, 3]) expect(strip(onPool[i]!)).toEqual(strip(here[i]!));
    expect(onPool[0]!.ok && onPool[2]!.ok && onPool[3]!.ok).toBe(true);
  });

  it('passes started side by side run one at a time on the engine, each with its own answers', async () => {
    const passes = [0, 1, 2].map((p) =>
      [0, 1].map((j) => item(`p${p}-${j}`, { type: 'score', prompt: text.repeat(p + j + 1), continuation: ' void.' })),
    );
    const alone: PassOutcome[][] = [];
    for (const pass of passes) alone.push(await runPass(loaded, pass, ctx, hooks));
    // The same engine, counting how many passes are inside it at once.
    let inside = 0;
    let most = 0;
    const counting = sequentialEngine({
      name: loaded.engine.name,
      config: loaded.engine.config,
      prefill: async (ids, options) => {
        most = Math.max(most, ++inside);
        await sleep(20); // room for another pass to get in, if the turn did not hold it back
        try {
          return await loaded.engine.prefill(ids, options);
        } finally {
          inside--;
        }
      },
      step: (token, state) => loaded.engine.step(token, state),
    });
    const counted: LoadedEngine = { ...loaded, engine: counting };
    const together = await Promise.all(passes.map((pass) => runPass(counted, pass, ctx, hooks)));
    const results = (outcomes: typeof alone) => outcomes.map((os) => os.map((o) => (o.ok ? o.result : o)));
    expect(results(together)).toEqual(results(alone));
    expect(most).toBe(1);
  });

  it('a pool that fails under a pass fails its jobs as retryable engine errors', async () => {
    const broken: PassHooks = { tokenize: () => Promise.reject(new Error('token thread exited (code 1)')) };
    const [o] = await runPass(loaded, [item('a', { type: 'completion', prompt: text })], ctx, broken);
    expect(o).toMatchObject({ ok: false, retryable: true, error: { code: 'engine_error' } });
    expect(o!.ok === false && o!.error.message).toMatch(/^tokenizer pool: token thread exited/);
  });
});
