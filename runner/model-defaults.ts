// Per-model serving defaults from the checkpoint's optional deciserve.json (written by train/): the training length
// (decimation "auto" turns on above it) and the DeciMamba layers that work best for that model.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { defaultDecimation, validateDecimation } from '../mamba/decimation.ts';
import type { DecimationConfig } from '../mamba/engine.ts';

export interface ModelDefaults {
  nLayer: number;
  trainLen: number;
  decimation: DecimationConfig;
}

const cardSchema = z.looseObject({
  training_length: z.number().int().positive().optional(),
  decimation: z
    .object({ layers: z.array(z.number().int().min(0)).min(1), beta: z.number(), lBase: z.number(), minSeqLen: z.number().int() })
    .optional(),
});

/** `trainLenOverride` (RUNNER_TRAIN_LEN) wins over the card; without either, 2048. */
export async function readModelDefaults(modelDir: string, nLayer: number, trainLenOverride?: number): Promise<ModelDefaults> {
  const text = await readFile(join(modelDir, 'deciserve.json'), 'utf8').catch(() => null);
  const card = text === null ? {} : cardSchema.parse(JSON.parse(text));
  const decimation = card.decimation ?? defaultDecimation(nLayer);
  validateDecimation(decimation, nLayer);
  return { nLayer, trainLen: trainLenOverride ?? card.training_length ?? 2048, decimation };
}
