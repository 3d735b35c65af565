// The deciserve CLI end to end, spawned as a user runs it, on a tiny random checkpoint.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliInProcess } from './cli-driver.ts';
import { tempDir } from './helpers.ts';

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'deciserve.mjs');
let work: string;
let model: string;

function cli(args: string[], cwd = ROOT, env: NodeJS.ProcessEnv = process.env) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, env, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A user error: non-zero exit, exactly one line on stderr, no stack trace. */
function expectOneLineError(r: ReturnType<typeof cli>, pattern: RegExp) {
  expect(r.code).not.toBe(0);
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^deciserve: /);
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

beforeAll(() => {
  work = tempDir('deciserve-cli-');
  model = join(work, 'tiny');
  const r = cli(['random-checkpoint', model, '--d-model', '32', '--n-layer', '2', '--d-state', '8', '--seed', '1']);
  expect(r.code, r.stderr).toBe(0);
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('deciserve CLI', () => {
  it('--help lists the commands; each command has --help', async () => {
    const top = cli(['--help']);
    expect(top.code).toBe(0);
    for (const c of ['generate', 'score', 'passkey', 'random-checkpoint']) expect(top.stdout).toContain(c);
    const gen = cli(['generate', '--help']);
    expect(gen.code).toBe(0);
    expect(gen.stdout).toMatch(/Usage: deciserve generate/);
    expect(gen.stdout).toContain('--max-tokens');
    expect((await cliInProcess(['help', 'passkey'])).stdout).toContain('--depths');
    expect((await cliInProcess(['score', '-h'])).stdout).toContain('--start');
  });

  it('random-checkpoint writes a loadable checkpoint folder and refuses to overwrite it', async () => {
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'haystack.txt'])
      expect(existsSync(join(model, f))).toBe(true);
    expectOneLineError(await cliInProcess(['random-checkpoint', model]), /already holds a checkpoint/);
  });

  it('generate prints the continuation, reproducibly with a seed, and JSON on request', async () => {
    const args = ['generate', '--model', model, '-n', '6', '--temperature', '0.8', '--seed', '3', 'Once upon a time'];
    const a = cli(args);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stderr).toMatch(/prefill .* tok\/s/);
    const parsed = JSON.parse(cli([...args, '--json', '-']).stdout);
    expect(parsed.text + '\n').toBe(a.stdout); // same seed, same text
    expect(parsed.tokens).toHaveLength(6);
    expect(parsed.finishReason).toBe('length');
    const other = JSON.parse(
      (await cliInProcess([...args.slice(0, -2), '4', 'Once upon a time', '--json', '-'])).stdout,
    );
    expect(other.tokens).not.toEqual(parsed.tokens);
    const deci = JSON.parse(
      (
        await cliInProcess([
          'generate',
          '-m',
          model,
          '-n',
          '2',
          '--decimation-layers',
          '1',
          '--l-base',
          '4',
          '--min-seq-len',
          '1',
          '--protect',
          '2',
          '--json',
          '-',
          'The quick brown fox jumps over the lazy dog',
        ])
      ).stdout,
    );
    expect(deci.kept[0].indices).toHaveLength(6);
  });

  it("takes DeciMamba's defaults from the model's deciserve.json, as the edge and the runner do", async () => {
    const withCard = join(work, 'tiny-card');
    cpSync(model, withCard, { recursive: true });
    writeFileSync(
      join(withCard, 'deciserve.json'),
      JSON.stringify({ trainingLength: 64, decimation: { layers: [1], beta: 0.5, lBase: 5, minSeqLen: 1 } }),
    );
    const args = [
      'generate',
      '-m',
      withCard,
      '-n',
      '1',
      '--decimate',
      '--json',
      '-',
      'The quick brown fox jumps over the lazy dog',
    ];
    const fromCard = JSON.parse((await cliInProcess(args)).stdout);
    expect(fromCard.decimation).toEqual({ layers: [1], beta: 0.5, lBase: 5, minSeqLen: 1 });
    expect(fromCard.kept[0].indices).toHaveLength(6); // L_base 5 + the protected last token
    const flag = JSON.parse((await cliInProcess([...args.slice(0, 5), '--l-base', '3', ...args.slice(5)])).stdout);
    expect(flag.decimation.lBase).toBe(3);
  });

  it('score prints perplexity over a span', async () => {
    const r = cli(['score', '--model', model, '--start', '2', 'The pass key is the pass key.']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/perplexity \d+\.\d+/);
    const parsed = JSON.parse((await cliInProcess(['score', '-m', model, '--json', '-', 'hello there world'])).stdout);
    expect(parsed.logprobs.length).toBe(parsed.tokens.length);
    expect(parsed.perplexity).toBeGreaterThan(1);
  });

  it('passkey reports accuracy per (length, depth) for Mamba and DeciMamba', () => {
    const out = join(work, 'passkey.json');
    const r = cli([
      'passkey',
      '-m',
      model,
      '--lengths',
      '120',
      '--depths',
      '0,1',
      '--samples',
      '2',
      '--l-base',
      '20',
      '--min-seq-len',
      '4',
      '--json',
      out,
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/length\s+depth\s+mamba\s+decimamba/);
    expect(r.stdout).toMatch(/120\s+1\.00/);
    expect(r.stderr).toMatch(/passkey: 8\/8/); // progress (not a TTY: lines)
    const json = JSON.parse(readFileSync(out, 'utf8'));
    expect(json.cells).toHaveLength(4);
    expect(json.decimation).toEqual({ layers: [1], beta: 0.5, lBase: 20, minSeqLen: 4 });
  });

  it('bad flags and bad files give one clear line and a non-zero exit', async () => {
    expectOneLineError(cli(['generate', '--model', model, '--bogus', 'x']), /unknown option --bogus/);
    expectOneLineError(
      cli(['passkey', '--model', model, '--haystack', join(work, 'none.txt')]),
      /--haystack .*none\.txt: cannot read/,
    );
    const inProcess: [string[], RegExp][] = [
      [['frobnicate'], /unknown command 'frobnicate'/],
      [['generate', '--model', model, '-n', 'lots', 'x'], /--max-tokens expects an integer, got 'lots'/],
      [['generate', '--model', model, '--max-tokens'], /--max-tokens/],
      [['generate', '--model', model], /no prompt/],
      [['generate', '--model', join(work, 'missing'), 'x'], /--model .*missing: no such folder/],
      [['passkey', '--model', model, '--lengths', '5'], /--lengths: .*shorter than the needle/],
      [['passkey', '--model', model, '--depths', '0.5,2'], /--depths must be in \[0, 1\], got 2/],
      [['passkey', '--model', model, '--decimation-layers', '7'], /--decimation-layers must be in \[0, 1\]/],
      [['passkey', '--model', model, '--modes', 'mamba,transformer'], /unknown mode 'transformer'/],
      [['score', '--model', work, 'x'], /not a checkpoint/],
      [['score', '--model', model, '--engine', 'warp', 'x y'], /unknown engine 'warp'/],
    ];
    for (const [args, pattern] of inProcess) expectOneLineError(await cliInProcess(args), pattern);
  });

  it('without --model and no default model, says how to get one', () => {
    const missing = join(work, 'no-such-model');
    expectOneLineError(
      cli(['generate', 'hi'], work, { ...process.env, DECISERVE_MODEL: missing }),
      /no-such-model does not exist.*random-checkpoint/,
    );
  });
});
