import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeRandomCheckpoint } from '../../mamba/random-checkpoint.ts';
import { registerCommand, UsageError } from '../registry.ts';
import { intValue } from '../values.ts';

registerCommand({
  name: 'random-checkpoint',
  summary:
    'Write a tiny deterministic random Mamba-1 checkpoint (HF format, byte-level tokenizer, haystack.txt) for trying the CLI.',
  usage: 'random-checkpoint [options] <dir>',
  options: {
    'd-model': { type: 'string', value: '<n>', description: 'hidden size', default: '64' },
    'n-layer': { type: 'string', value: '<n>', description: 'layers', default: '4' },
    'd-state': { type: 'string', value: '<n>', description: 'SSM state size', default: '16' },
    'd-conv': { type: 'string', value: '<n>', description: 'conv kernel', default: '4' },
    expand: { type: 'string', value: '<n>', description: 'd_inner / d_model', default: '2' },
    'vocab-size': {
      type: 'string',
      value: '<n>',
      description: "vocabulary (at least the tokenizer's 300; padded to 8)",
    },
    seed: { type: 'string', value: '<n>', description: 'PRNG seed', default: '0' },
    untied: { type: 'boolean', description: 'write a separate lm_head.weight' },
    force: { type: 'boolean', description: 'overwrite an existing checkpoint in <dir>' },
  },
  async run({ values, positionals }) {
    if (positionals.length !== 1) throw new UsageError('random-checkpoint: give exactly one output folder');
    const dir = positionals[0]!;
    if (existsSync(join(dir, 'config.json')) && !values.force) {
      throw new UsageError(`random-checkpoint: ${dir} already holds a checkpoint (use --force to overwrite)`);
    }
    const { config } = await writeRandomCheckpoint(dir, {
      dModel: intValue(values, 'd-model', { min: 1 })!,
      nLayer: intValue(values, 'n-layer', { min: 1 })!,
      dState: intValue(values, 'd-state', { min: 1 })!,
      dConv: intValue(values, 'd-conv', { min: 1 })!,
      expand: intValue(values, 'expand', { min: 1 })!,
      vocabSize: intValue(values, 'vocab-size', { min: 1 }),
      seed: intValue(values, 'seed')!,
      untied: values.untied === true,
    });
    process.stdout.write(
      `wrote ${dir}: d_model ${config.dModel}, ${config.nLayer} layers, d_state ${config.dState}, vocab ${config.vocabSize}\n`,
    );
  },
});
