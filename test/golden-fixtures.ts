// The PyTorch golden fixtures (test/fixtures/<name>/, written by train/fixtures.py; format in mamba/README.md) and
// the one parity check every engine must pass on them: logits, kept indices, states and 8 greedy tokens.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { expect } from 'vitest';
import { z } from 'zod';
import type { MambaEngine } from '../mamba/engine.ts';
import { readSafetensors, type SafetensorsReader } from '../mamba/safetensors.ts';
import { replayGoldenCase } from '../mamba/golden-case.ts';
import { maxAbsDiff } from './helpers.ts';

const ROOT = resolve(import.meta.dirname, '..');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
const LOGIT_TOL = 1e-3;
const STATE_TOL = 1e-3;
// The shipped model's ~6K-token cases take tens of seconds each in the plain-JS reference on 2 cores.
export const CASE_TIMEOUT_MS = 10 * 60_000;

const int = z.number().int();
const caseSchema = z.object({
  name: z.string().regex(/^[\w.-]+$/),
  ids: z.array(int.nonnegative()).min(1),
  protect: int.nonnegative(),
  decimation: z
    .object({
      layers: z.array(int.nonnegative()).min(1),
      beta: z.number(),
      lBase: z.number(),
      minSeqLen: int.nonnegative(),
    })
    .nullable(),
  positions: z.array(int.nonnegative()).min(1),
  kept: z.array(z.object({ layer: int.nonnegative(), indices: z.array(int.nonnegative()) })),
  greedy: z.array(int.nonnegative()).length(8),
});
const goldenSchema = z.object({
  checkpoint: z.string().min(1),
  dtype: z.literal('float32', { error: 'only float32 fixtures are defined (tolerance 1e-3)' }),
  cases: z.array(caseSchema).min(1),
});
export type GoldenCase = z.infer<typeof caseSchema>;

export interface Fixture {
  name: string;
  checkpointDir: string;
  cases: GoldenCase[];
  tensors: SafetensorsReader;
}

/** Reads and checks every fixture folder up front: anything malformed throws here, failing this file. */
export function discoverFixtures(): Fixture[] {
  if (!existsSync(FIXTURES)) return [];
  const dirs = readdirSync(FIXTURES)
    .filter((d) => statSync(join(FIXTURES, d)).isDirectory())
    .sort();
  return dirs.map((name) => {
    const where = `test/fixtures/${name}`;
    const jsonPath = join(FIXTURES, name, 'golden.json');
    const tensorsPath = join(FIXTURES, name, 'golden.safetensors');
    if (!existsSync(jsonPath)) throw new Error(`${where}: no golden.json`);
    if (!existsSync(tensorsPath)) throw new Error(`${where}: no golden.safetensors`);
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(jsonPath, 'utf8'));
    } catch (err) {
      throw new Error(`${where}/golden.json: ${(err as Error).message}`);
    }
    const parsed = goldenSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new Error(`${where}/golden.json: field ${issue.path.join('.')}: ${issue.message}`);
    }
    const tensors = readSafetensors(readFileSync(tensorsPath));
    const checkpointDir = resolve(ROOT, parsed.data.checkpoint);
    if (!existsSync(join(checkpointDir, 'config.json')))
      throw new Error(`${where}: checkpoint ${parsed.data.checkpoint} has no config.json`);
    for (const c of parsed.data.cases) {
      if (!tensors.has(`${c.name}.logits`)) throw new Error(`${where}/golden.safetensors: no tensor ${c.name}.logits`);
      if (tensors.info(`${c.name}.logits`).shape[0] !== c.positions.length) {
        throw new Error(
          `${where}/golden.safetensors: ${c.name}.logits has ${tensors.info(`${c.name}.logits`).shape[0]} rows, positions has ${c.positions.length}`,
        );
      }
      if (!tensors.has(`${c.name}.conv.0`) || !tensors.has(`${c.name}.ssm.0`))
        throw new Error(`${where}/golden.safetensors: no states for case ${c.name}`);
    }
    return { name, checkpointDir, cases: parsed.data.cases, tensors };
  });
}

/** Replays one golden case on `engine` and asserts it matches within the fp32 tolerances. */
export async function expectGoldenParity(engine: MambaEngine, fixture: Fixture, c: GoldenCase): Promise<void> {
  const { vocabSize, dInner, dConv, dState, nLayer } = engine.config;
  const { result, greedy } = await replayGoldenCase(engine, c);

  const golden = fixture.tensors.getF32(`${c.name}.logits`);
  expect(fixture.tensors.info(`${c.name}.logits`).shape).toEqual([c.positions.length, vocabSize]);
  c.positions.forEach((p, row) => {
    const diff = maxAbsDiff(result.logits[row]!, golden.subarray(row * vocabSize, (row + 1) * vocabSize));
    expect(diff, `max |Δlogit| at position ${p}`).toBeLessThanOrEqual(LOGIT_TOL);
  });

  expect(result.kept.map((k) => ({ layer: k.layer, indices: Array.from(k.indices) }))).toEqual(c.kept);

  for (let i = 0; i < nLayer; i++) {
    expect(fixture.tensors.info(`${c.name}.conv.${i}`).shape).toEqual([dInner, dConv]);
    expect(fixture.tensors.info(`${c.name}.ssm.${i}`).shape).toEqual([dInner, dState]);
    expect(
      maxAbsDiff(result.state[i]!.conv, fixture.tensors.getF32(`${c.name}.conv.${i}`)),
      `conv state ${i}`,
    ).toBeLessThanOrEqual(STATE_TOL);
    expect(
      maxAbsDiff(result.state[i]!.ssm, fixture.tensors.getF32(`${c.name}.ssm.${i}`)),
      `ssm state ${i}`,
    ).toBeLessThanOrEqual(STATE_TOL);
  }

  expect(greedy).toEqual(c.greedy);
}
