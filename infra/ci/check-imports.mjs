// The import graph's rules (.dependency-cruiser.cjs: no cycle, worker/ and runner/ meet only in protocol/, nothing
// imports bench/ code) plus one that dependency-cruiser has no rule for: runner/ at most MAX_DEPTH import levels deep.
//   node infra/ci/check-imports.mjs        exits 1 on any violation; prints the figures either way
import { createRequire } from 'node:module';
import { cruise } from 'dependency-cruiser';

const MAX_DEPTH = 6;
const ROOTS = ['runner', 'worker', 'mamba', 'protocol', 'cli', 'bench'];
const config = createRequire(import.meta.url)('../../.dependency-cruiser.cjs');
const { existsSync } = await import('node:fs');

const { output } = await cruise(
  ROOTS.filter((r) => existsSync(r)),
  { ...config.options, validate: true, ruleSet: { forbidden: config.forbidden } },
);
const violations = output.summary.violations;
for (const v of violations)
  console.log(
    `${v.rule.name}: ${v.from} → ${v.to}${v.cycle ? ` (cycle ${v.cycle.map((c) => c.name ?? c).join(' → ')})` : ''}`,
  );

// Longest chain of imports between runner/ files; its depth is the number of imports on it (files - 1).
const edges = new Map();
for (const m of output.modules) {
  if (!m.source.startsWith('runner/')) continue;
  edges.set(
    m.source,
    m.dependencies.map((d) => d.resolved).filter((r) => r.startsWith('runner/')),
  );
}
const memo = new Map();
const chain = (file, seen = new Set()) => {
  if (memo.has(file)) return memo.get(file);
  if (seen.has(file)) return [file]; // a cycle: reported above, cut here
  seen.add(file);
  let best = [];
  for (const next of edges.get(file) ?? []) {
    const c = chain(next, seen);
    if (c.length > best.length) best = c;
  }
  seen.delete(file);
  const result = [file, ...best];
  memo.set(file, result);
  return result;
};
let deepest = [];
for (const file of edges.keys()) if (chain(file).length > deepest.length) deepest = chain(file);
const depth = deepest.length - 1;
const depthOk = depth <= MAX_DEPTH;
console.log(`runner/ depth ${depth} (at most ${MAX_DEPTH}): ${deepest.join(' → ')}`);
console.log(`${output.summary.totalCruised} modules, ${violations.length} rule violation(s)`);
if (violations.length > 0 || !depthOk) process.exit(1);
