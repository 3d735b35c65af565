// Node side of the shared scenario file: load it, the haystack, and apply command-line overrides.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Scenario, ScenarioFile, Variant } from '../scenarios/scenario.ts';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const SCENARIO_FILE = join(REPO, 'bench/scenarios/scenarios.json');

export function loadScenarioFile(path = SCENARIO_FILE): ScenarioFile {
  const file = JSON.parse(readFileSync(path, 'utf8')) as ScenarioFile;
  for (const [name, s] of Object.entries(file.scenarios)) {
    if (!file.lengthMixes[s.mix]) throw new Error(`scenario ${name}: unknown length mix '${s.mix}'`);
    if (!(s.ratePerSecond > 0)) throw new Error(`scenario ${name}: ratePerSecond must be > 0`);
    for (const v of s.variants)
      if (v !== 'mamba' && v !== 'decimamba') throw new Error(`scenario ${name}: unknown variant '${v}'`);
  }
  return file;
}

export function loadHaystack(file: ScenarioFile): string {
  return readFileSync(join(REPO, file.haystack), 'utf8');
}

export interface Overrides {
  rate?: number;
  duration?: string;
  variants?: Variant[];
}

export function withOverrides(s: Scenario, o: Overrides): Scenario {
  return {
    ...s,
    ratePerSecond: o.rate ?? s.ratePerSecond,
    duration: o.duration ?? s.duration,
    variants: o.variants ?? s.variants,
  };
}
