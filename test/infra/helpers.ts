// Shared helpers for the infra checks: repo paths, YAML documents, the runner's metric names, a Dockerfile parser.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { createMetrics } from '../../runner/metrics.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
export const readJson = <T = any>(p: string): T => JSON.parse(read(p));

/** Every document of a YAML file; throws on any parse error or warning. */
export function yamlDocs(p: string): any[] {
  return parseAllDocuments(read(p))
    .map((doc) => {
      if (doc.errors.length || doc.warnings.length)
        throw new Error(`${p}: ${[...doc.errors, ...doc.warnings].map((e) => e.message).join('; ')}`);
      return doc.toJS();
    })
    .filter((d) => d != null);
}

/** Series names the runner exposes: registered names, plus _bucket/_sum/_count for histograms. */
export async function runnerSeriesNames(): Promise<Set<string>> {
  const metrics = createMetrics();
  const names = new Set<string>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
  }
  return names;
}

/** `label="v"` and `label=~"a|b"` matchers in a PromQL expression. */
export function labelMatchers(expr: string): Array<{ label: string; values: string[] }> {
  return [...expr.matchAll(/(\w+)\s*(=~|!=|=)\s*"([^"]*)"/g)]
    .filter((m) => m[2] !== '!=')
    .map((m) => ({ label: m[1], values: m[2] === '=~' ? m[3].split('|') : [m[3]] }));
}

export interface Instruction {
  cmd: string;
  args: string;
  line: number;
}

/** Dockerfile instructions with line continuations joined and comments dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let buf = '';
  let start = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!buf && (line === '' || line.startsWith('#'))) return;
    if (buf && line.startsWith('#')) return;
    if (!buf) start = i + 1;
    buf += (buf ? ' ' : '') + line.replace(/\\$/, '').trim();
    if (line.endsWith('\\')) return;
    const m = /^(\w+)\s+([\s\S]*)$/.exec(buf);
    if (!m) throw new Error(`Dockerfile line ${start}: cannot parse "${buf}"`);
    out.push({ cmd: m[1].toUpperCase(), args: m[2], line: start });
    buf = '';
  });
  if (buf) throw new Error('Dockerfile ends inside a continued line');
  return out;
}

/** Splits `--flag=value a b` into flags and positional words (exec-form JSON arrays are parsed). */
export function splitArgs(args: string): { flags: Record<string, string>; words: string[] } {
  const flags: Record<string, string> = {};
  if (args.startsWith('[')) return { flags, words: JSON.parse(args) };
  const words: string[] = [];
  for (const w of args.split(/\s+/).filter(Boolean)) {
    const f = /^--([\w-]+)(?:=(.*))?$/.exec(w);
    if (f) flags[f[1]] = f[2] ?? 'true';
    else words.push(w);
  }
  return { flags, words };
}

export function walkFiles(dir: string): string[] {
  const abs = join(ROOT, dir);
  if (!existsSync(abs)) return [];
  if (statSync(abs).isFile()) return [dir];
  return readdirSync(abs, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walkFiles(join(dir, e.name)) : [relative(ROOT, join(abs, e.name))],
  );
}

/**
 * The source files reachable from `entry` through relative imports (static, dynamic, and `new URL('./x.ts',
 * import.meta.url)` worker entries), and the bare package names they import.
 */
export function importClosure(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const todo = [entry];
  while (todo.length) {
    const file = todo.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const src = read(file);
    const specs = [
      ...src.matchAll(/^\s*(?:import|export)\s(?!type\s)[^;]*?from\s*['"]([^'"]+)['"]/gm),
      ...src.matchAll(/^\s*import\s*['"]([^'"]+)['"]/gm),
      ...src.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g),
      ...src.matchAll(/new URL\(\s*['"](\.[^'"]+)['"]\s*,\s*import\.meta\.url\)/g),
      ...src.matchAll(/require(?:\.resolve)?\(\s*['"]([^'"]+)['"]\s*\)/g),
    ].map((m) => m[1]);
    for (const spec of specs) {
      if (spec.startsWith('.')) {
        const target = relative(ROOT, resolve(ROOT, dirname(file), spec));
        if (!existsSync(join(ROOT, target))) throw new Error(`${file} imports ${spec}, which does not exist`);
        if (/\.(ts|js|mjs)$/.test(target)) todo.push(target);
        else files.add(target);
      } else if (!spec.startsWith('node:')) {
        packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
      }
    }
  }
  return { files, packages };
}
