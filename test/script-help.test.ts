// Every script a user runs (benchmarks, checks, builds) answers --help with what it does and its options, and a wrong
// option with exit status 2 and the same text, before it starts any work.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = join(import.meta.dirname, '..');
const tracked = execFileSync('git', ['ls-files', '*.ts'], { cwd: REPO, encoding: 'utf8' })
  .split('\n')
  .filter((f) => /^(bench|runner|worker|mamba|cli)\//.test(f));
const source = (f: string) => readFileSync(join(REPO, f), 'utf8');
const scripts = tracked.filter((f) => f !== 'mamba/script-args.ts' && /\bscriptArgs\(/.test(source(f)));

const run = (file: string, arg: string) =>
  spawnSync(process.execPath, ['--import', 'tsx', file, arg], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });

describe('scripts print --help', () => {
  it('every script that parses options either goes through scriptArgs or handles --help itself', () => {
    const bare = tracked.filter((f) => /\bparseArgs\(/.test(source(f)) && !/['"]--help['"]|help:/.test(source(f)));
    expect(bare.filter((f) => f !== 'mamba/script-args.ts')).toEqual([]);
    expect(scripts.length).toBeGreaterThanOrEqual(7);
  });

  it.each(scripts)('%s: --help exits 0 with its options; an unknown option exits 2', (file) => {
    const help = run(file, '--help');
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toMatch(/Options:\n/);
    expect(help.stdout).toContain('--help, -h');
    const wrong = run(file, '--no-such-option');
    expect(wrong.status).toBe(2);
    expect(wrong.stderr).toContain("Unknown option '--no-such-option'");
  });
});
