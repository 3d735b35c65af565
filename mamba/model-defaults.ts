// Per-model serving defaults from a checkpoint's optional deciserve.json (written by train/): the training length
// (decimation "auto" turns on above it) and the DeciMamba layers that work best for that model. Runtime-neutral:
// the Worker fetches the file, Node reads it (mamba/checkpoint.ts readModelDefaults).
import { z } from 'zod';
import { defaultDecimation, validateDecimation, validateLengthBudgets, type LengthBudgets } from './decimation.ts';
import type { DecimationConfig } from './engine.ts';

export interface ModelDefaults {
  nLayer: number;
  trainLen: number;
  /** The paper's fixed form (decimation "fixed", or any request that names l_base). */
  decimation: DecimationConfig;
  /** Length-adaptive L_base (decimation "auto"/"on"); absent for a model whose card has none: then the fixed form. */
  lBaseByLength?: LengthBudgets;
}

// Keys are camelCase, as DecimationConfig; cards written before that named the training length training_length.
const cardSchema = z.looseObject({
  trainingLength: z.number().int().positive().optional(),
  training_length: z.number().int().positive().optional(),
  decimation: z
    .object({
      layers: z.array(z.number().int().min(0)).min(1),
      beta: z.number(),
      lBase: z.number(),
      minSeqLen: z.number().int(),
      lBaseByLength: z.array(z.tuple([z.number(), z.number()])).optional(),
    })
    .optional(),
});

/** `card` is the parsed deciserve.json or null; `trainLenOverride` wins over it; without either, 2048. */
export function modelDefaultsFromCard(card: unknown, nLayer: number, trainLenOverride?: number): ModelDefaults {
  const parsed = card === null ? {} : cardSchema.parse(card);
  const { lBaseByLength, ...fixed }: DecimationConfig & { lBaseByLength?: [number, number][] } =
    parsed.decimation ?? defaultDecimation(nLayer);
  validateDecimation(fixed, nLayer);
  if (lBaseByLength) validateLengthBudgets(lBaseByLength);
  const trainLen = trainLenOverride ?? parsed.trainingLength ?? parsed.training_length ?? 2048;
  return { nLayer, trainLen, decimation: fixed, ...(lBaseByLength ? { lBaseByLength } : {}) };
}
