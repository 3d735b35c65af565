// What the device check records: every check (pass/fail with its numbers), benchmark rows and notes, written as JSON
// and markdown to $OUT, with a short table printed last (the device tool returns only the end of the output).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface CheckResult {
  section: string;
  name: string;
  ok: boolean;
  /** e.g. { relErr, maxAbs, tol } */
  values: Record<string, number | string | boolean>;
  error?: string;
}

export class Report {
  readonly started = Date.now();
  readonly checks: CheckResult[] = [];
  readonly tables: Record<string, Record<string, unknown>[]> = {};
  readonly info: Record<string, unknown> = {};
  readonly notes: string[] = [];
  readonly skipped: string[] = [];
  /** How this report was made (bench/README: every result file has one); a merged report lists its parts' commands. */
  command = ['node', ...process.argv.slice(1).map((a) => a.replace(/^.*\/(\.device\/app\/)/, '$1'))].join(' ');

  check(section: string, name: string, ok: boolean, values: CheckResult['values'] = {}, error?: string): boolean {
    this.checks.push({ section, name, ok, values, ...(error ? { error } : {}) });
    const v = Object.entries(values)
      .map(([k, x]) => `${k}=${typeof x === 'number' ? fmt(x) : x}`)
      .join(' ');
    console.log(`${ok ? 'PASS' : 'FAIL'} [${section}] ${name} ${v}${error ? ` — ${error}` : ''}`);
    return ok;
  }

  /** Runs `fn`; an exception is a failed check (the run goes on). */
  async guard(section: string, name: string, fn: () => Promise<void> | void): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.check(section, name, false, {}, (err as Error).stack?.split('\n').slice(0, 4).join(' | ') ?? String(err));
    }
    await new Promise((resolve) => setImmediate(resolve)); // lets a SIGTERM handler (the outer `timeout`) run between items
  }

  row(table: string, row: Record<string, unknown>): void {
    (this.tables[table] ??= []).push(row);
    console.log(`[${table}] ${JSON.stringify(row)}`);
  }

  skip(what: string): void {
    this.skipped.push(what);
    console.log(`SKIP ${what}`);
  }

  get failures(): CheckResult[] {
    return this.checks.filter((c) => !c.ok);
  }

  elapsedS(): number {
    return (Date.now() - this.started) / 1000;
  }

  write(outDir: string | undefined, name = 'cuda-device-check'): void {
    const json = JSON.stringify(
      {
        command: this.command,
        info: this.info,
        checks: this.checks,
        tables: this.tables,
        notes: this.notes,
        skipped: this.skipped,
        elapsedS: this.elapsedS(),
      },
      null,
      1,
    );
    if (!outDir) return;
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, `${name}.json`), json);
    if (!name.startsWith('part-')) writeFileSync(join(outDir, `${name}.md`), this.markdown()); // parts get merged first
  }

  markdown(): string {
    const lines: string[] = ['# CUDA engine device check', ''];
    lines.push('```', JSON.stringify(this.info, null, 1), '```', '');
    const passed = this.checks.length - this.failures.length;
    lines.push(
      `## Checks: ${passed}/${this.checks.length} passed`,
      '',
      '| section | check | ok | values |',
      '|---|---|---|---|',
    );
    for (const c of this.checks) {
      const v = Object.entries(c.values)
        .map(([k, x]) => `${k}=${typeof x === 'number' ? fmt(x) : x}`)
        .join(' ');
      lines.push(
        `| ${c.section} | ${c.name} | ${c.ok ? 'yes' : '**NO**'} | ${v}${c.error ? ` ${c.error.replaceAll('|', '/')}` : ''} |`,
      );
    }
    for (const [table, rows] of Object.entries(this.tables)) {
      if (rows.length === 0) continue;
      const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
      lines.push('', `## ${table}`, '', `| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`);
      for (const r of rows) lines.push(`| ${cols.map((c) => cell(r[c])).join(' | ')} |`);
    }
    if (this.notes.length) lines.push('', '## Notes', '', ...this.notes.map((n) => `- ${n}`));
    if (this.skipped.length) lines.push('', '## Skipped', '', ...this.skipped.map((n) => `- ${n}`));
    lines.push('', `elapsed ${this.elapsedS().toFixed(0)} s`, '');
    return lines.join('\n');
  }
}

export function fmt(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(2);
  return Number.isInteger(x) ? String(x) : x.toFixed(a >= 100 ? 1 : 4);
}

function cell(v: unknown): string {
  if (typeof v === 'number') return fmt(v);
  if (v === undefined || v === null) return '';
  return String(v).replaceAll('|', '/');
}

/** ‖a − b‖₂ / ‖b‖₂, max |a − b|, and whether anything is NaN (an unwritten output). */
export function compare(a: ArrayLike<number>, b: ArrayLike<number>): { relErr: number; maxAbs: number; nan: boolean } {
  if (a.length !== b.length) throw new Error(`compare: length ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  let maxAbs = 0;
  let nan = false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Number.isNaN(x) !== Number.isNaN(y)) nan = true;
    if (Number.isNaN(x) || Number.isNaN(y)) continue;
    const d = x - y;
    num += d * d;
    den += y * y;
    maxAbs = Math.max(maxAbs, Math.abs(d));
  }
  return { relErr: den > 0 ? Math.sqrt(num / den) : Math.sqrt(num), maxAbs, nan };
}

/** A wall-clock budget: sections ask whether they still have time. */
export class Deadline {
  private readonly end: number;
  constructor(seconds: number) {
    this.end = Date.now() + seconds * 1000;
  }
  left(): number {
    return (this.end - Date.now()) / 1000;
  }
  has(seconds: number): boolean {
    return this.left() >= seconds;
  }
}
