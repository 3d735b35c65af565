// bench/README: every result file says how it was made. A file without its command cannot be re-run or checked.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const RESULTS = join(import.meta.dirname, '../../bench/results');

describe('bench/results', () => {
  const files = readdirSync(RESULTS).filter((f) => f.endsWith('.json'));
  it('has result files', () => expect(files.length).toBeGreaterThan(5));
  // A string, or a list of them for a result merged from several runs.
  it.each(files)('%s records the command that wrote it', (file) => {
    const json = JSON.parse(readFileSync(join(RESULTS, file), 'utf8')) as { command?: unknown };
    const commands = Array.isArray(json.command) ? json.command : [json.command];
    expect(commands.length, `${file} has an empty "command" list`).toBeGreaterThan(0);
    for (const c of commands) {
      expect(typeof c, `${file} has no "command" field`).toBe('string');
      expect((c as string).trim().length).toBeGreaterThan(5);
    }
  });
});
