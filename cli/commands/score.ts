import { scoreSpan } from '../../mamba/score.ts';
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
import { intValue } from '../values.ts';

registerCommand({
  name: 'score',
  summary: 'Log-probabilities and perplexity of a text (or a token span of it) under the model.',
  usage: 'score [options] <text...>',
  options: {
    ...modelOptions,
    file: {
      type: 'string',
      short: 'f',
      value: '<file>',
      description: 'score the contents of a file instead of the arguments',
    },
    start: { type: 'string', value: '<i>', description: 'first scored token index (≥ 1)', default: '1' },
    end: { type: 'string', value: '<i>', description: 'one past the last scored token (default: all tokens)' },
    decimate: {
      type: 'boolean',
      description: 'score with DeciMamba: tokens before the span may be decimated (implied by --decimation-layers)',
    },
    ...decimationOptions,
    'per-token': { type: 'boolean', description: 'print every token with its log-probability' },
    ...jsonOption,
  },
  details: 'Example: deciserve score --model /tmp/tiny --file notes.txt --start 100',
  async run({ values, positionals }) {
    const text = await textInput(values, positionals, 'file');
    if (text === '') throw new UsageError('score: no text (give it as arguments or --file <file>)');
    const { checkpoint, engine, defaults } = await openModel(values);
    const ids = checkpoint.tokenizer.encode(text);
    if (ids.length < 2) throw new UsageError(`score: the text has ${ids.length} token(s); at least 2 are needed`);
    const start = intValue(values, 'start', { min: 1, max: ids.length - 1 })!;
    const end = intValue(values, 'end', { min: start + 1, max: ids.length }) ?? ids.length;
    const decimation = decimationForPrompt(values, checkpoint.config.nLayer, defaults, ids.length);

    const began = performance.now();
    const result = await scoreSpan(engine, ids, { start, end, decimation });
    const ms = performance.now() - began;
    const toStdout = await writeJsonOutput(values, {
      engine: engine.name,
      model: checkpoint.dir,
      decimation,
      totalTokens: ids.length,
      ms,
      ...result,
    });
    if (toStdout) return;
    if (values['per-token']) {
      result.tokens.forEach((token, j) => {
        process.stdout.write(
          `${String(start + j).padStart(6)}  ${result.logprobs[j]!.toFixed(4).padStart(9)}  ${JSON.stringify(checkpoint.tokenizer.decode([token]))}\n`,
        );
      });
    }
    process.stdout.write(
      `tokens ${result.tokens.length} [${start}, ${end}) of ${ids.length}  nll/token ${result.meanNll.toFixed(4)}  perplexity ${result.perplexity.toFixed(3)}\n`,
    );
    process.stderr.write(
      `[${engine.name}] ${end} tokens in ${ms.toFixed(1)} ms (${((end / ms) * 1000).toFixed(0)} tok/s)\n`,
    );
  },
});
