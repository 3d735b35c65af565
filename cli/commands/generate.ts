import { generate } from '../../mamba/generate.ts';
import { COMPLETION_DEFAULTS } from '../../protocol/job-request.ts';
import {
  decimationForPrompt,
  decimationOptions,
  jsonOption,
  modelOptions,
  openModel,
  textInput,
  writeJsonOutput,
} from '../model.ts';
import { registerCommand, UsageError } from '../registry.ts';
import { floatValue, intValue, stringList } from '../values.ts';

registerCommand({
  name: 'generate',
  summary: 'Continue a prompt: one prefill (optionally DeciMamba), then token-by-token decoding.',
  usage: 'generate [options] <prompt...>',
  options: {
    ...modelOptions,
    'prompt-file': {
      type: 'string',
      value: '<file>',
      description: 'read the prompt from a file instead of the arguments',
    },
    'max-tokens': { type: 'string', short: 'n', value: '<n>', description: 'tokens to generate', default: '64' },
    temperature: {
      type: 'string',
      short: 't',
      value: '<x>',
      description: 'sampling temperature; 0 = greedy (as the API)',
      default: String(COMPLETION_DEFAULTS.temperature),
    },
    'top-k': {
      type: 'string',
      value: '<k>',
      description: 'sample among the k most likely tokens; 0 = off',
      default: '0',
    },
    'top-p': { type: 'string', value: '<p>', description: 'nucleus sampling mass; 1 = off', default: '1' },
    seed: { type: 'string', value: '<n>', description: 'sampling seed', default: '0' },
    stop: { type: 'string', multiple: true, value: '<text>', description: 'stop when the output contains <text>' },
    decimate: { type: 'boolean', description: 'prefill with DeciMamba (implied by --decimation-layers)' },
    ...decimationOptions,
    protect: { type: 'string', value: '<n>', description: 'prompt tail DeciMamba always keeps', default: '1' },
    ...jsonOption,
  },
  details: 'Example: deciserve generate --model /tmp/tiny -n 20 "Once upon a time"',
  async run({ values, positionals }) {
    const prompt = await textInput(values, positionals, 'prompt-file');
    if (prompt === '') throw new UsageError('generate: no prompt (give it as arguments or --prompt-file <file>)');
    const maxTokens = intValue(values, 'max-tokens', { min: 1 })!;
    const sampling = {
      temperature: floatValue(values, 'temperature', { min: 0 })!,
      topK: intValue(values, 'top-k', { min: 0 })!,
      topP: floatValue(values, 'top-p', { min: 0, max: 1 })!,
      seed: intValue(values, 'seed')!,
    };
    const protect = intValue(values, 'protect', { min: 0 })!;
    const { checkpoint, engine, defaults } = await openModel(values);
    const ids = checkpoint.tokenizer.encode(prompt);
    const decimation = decimationForPrompt(values, checkpoint.config.nLayer, defaults, ids.length);
    if (ids.length === 0) throw new UsageError('generate: the prompt encodes to zero tokens');

    const result = await generate(engine, checkpoint.tokenizer, ids, {
      maxTokens,
      ...sampling,
      stop: stringList(values, 'stop'),
      decimation,
      protect,
    });
    const json = { engine: engine.name, model: checkpoint.dir, decimation, ...result };
    const toStdout = await writeJsonOutput(values, json);
    if (!toStdout) process.stdout.write(result.text + '\n');
    const t = result.timings;
    const kept = result.kept.map((k) => `layer ${k.layer} kept ${k.indices.length}/${ids.length}`).join(', ');
    process.stderr.write(
      `[${engine.name}] prompt ${ids.length} tok: prefill ${t.prefillMs.toFixed(1)} ms (${t.prefillTokensPerSecond.toFixed(0)} tok/s); ` +
        `${result.tokens.length} tok in ${t.decodeMs.toFixed(1)} ms (${t.decodeTokensPerSecond.toFixed(1)} tok/s); finish=${result.finishReason}` +
        (kept ? `; ${kept}` : '') +
        '\n',
    );
  },
});
