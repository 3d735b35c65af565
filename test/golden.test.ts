// Parity with the PyTorch implementation (train/): every golden case is replayed on the reference engine.
// No fixtures -> no parity cases; a malformed fixture fails the file loudly (test/golden-fixtures.ts).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadModel } from '../mamba/checkpoint.ts';
import type { MambaConfig, MambaWeights } from '../mamba/engine.ts';
import { ReferenceEngine } from '../mamba/reference/index.ts';
import { CASE_TIMEOUT_MS, discoverFixtures, expectGoldenParity, FIXTURES } from './golden-fixtures.ts';

const fixtures = discoverFixtures();
const models = new Map<string, Promise<{ config: MambaConfig; weights: MambaWeights }>>();
const engineFor = async (dir: string) => {
  if (!models.has(dir)) models.set(dir, loadModel(dir));
  return ReferenceEngine.fromCheckpoint(await models.get(dir)!);
};

describe('golden parity with the PyTorch implementation', () => {
  it(`discovers fixtures (found ${fixtures.length})`, () => {
    const dirs = existsSync(FIXTURES)
      ? readdirSync(FIXTURES).filter((d) => statSync(join(FIXTURES, d)).isDirectory())
      : [];
    expect(fixtures.map((f) => f.name).sort()).toEqual(dirs.sort());
  });

  for (const fixture of fixtures) {
    for (const c of fixture.cases) {
      it(
        `${fixture.name}/${c.name}: logits, kept indices, states and 8 greedy tokens`,
        async () => {
          await expectGoldenParity(await engineFor(fixture.checkpointDir), fixture, c);
        },
        CASE_TIMEOUT_MS,
      );
    }
  }
});
