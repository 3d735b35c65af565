import { join } from 'node:path';
import {
  buildPasskeyPrompt,
  encodeCorpus,
  haystackText,
  passkeyRng,
  runPasskey,
  type PasskeyCell,
  type PasskeyMode,
} from '../../mamba/passkey.ts';
import { createProgress } from '../progress.ts';
import { decimationForLength, lBaseForLength } from '../../mamba/decimation.ts';
import {
  decimationFromFlags,
  decimationOptions,
  jsonOption,
  modelOptions,
  openModel,
  readTextFile,
  writeJsonOutput,
} from '../model.ts';
import { registerCommand, UsageError } from '../registry.ts';
import { intValue, listValue, stringValue } from '../values.ts';

const MODES: PasskeyMode[] = ['mamba', 'decimamba'];

function table(cells: PasskeyCell[], modes: PasskeyMode[]): string {
  const header = ['length', 'depth', ...modes];
  const rows: string[][] = [];
  const keys = [...new Set(cells.map((c) => `${c.length}|${c.depth}`))];
  for (const key of keys) {
    const group = cells.filter((c) => `${c.length}|${c.depth}` === key);
    const first = group[0]!;
    rows.push([
      String(first.length),
      first.depth.toFixed(2),
      ...modes.map((m) => {
        const c = group.find((g) => g.mode === m)!;
        return `${(100 * c.accuracy).toFixed(0)}% (${c.correct}/${c.total})`;
      }),
    ]);
  }
  const overall = (m: PasskeyMode): string => {
    const mine = cells.filter((c) => c.mode === m);
    const correct = mine.reduce((a, c) => a + c.correct, 0);
    const total = mine.reduce((a, c) => a + c.total, 0);
    return `${total ? ((100 * correct) / total).toFixed(0) : 0}% (${correct}/${total})`;
  };
  rows.push(['all', '', ...modes.map(overall)]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((cell, i) => cell.padStart(widths[i]!)).join('  ');
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

registerCommand({
  name: 'passkey',
  summary:
    "Passkey retrieval accuracy per (length, depth), for Mamba and DeciMamba (the paper's task; see mamba/README.md).",
  usage: 'passkey [options]',
  options: {
    ...modelOptions,
    lengths: { type: 'string', value: '<list>', description: 'prompt lengths in tokens', default: '512,1024,2048' },
    depths: { type: 'string', value: '<list>', description: 'needle depths in [0, 1]', default: '0,0.25,0.5,0.75,1' },
    samples: { type: 'string', value: '<n>', description: 'prompts per (length, depth)', default: '5' },
    seed: { type: 'string', value: '<n>', description: 'seed for keys and haystack offsets', default: '0' },
    modes: {
      type: 'string',
      value: '<list>',
      description: 'which of mamba,decimamba to run',
      default: 'mamba,decimamba',
    },
    ...decimationOptions,
    haystack: { type: 'string', value: '<file>', description: 'held-out filler text (default: <model>/haystack.txt)' },
    ...jsonOption,
  },
  details: 'Example: deciserve passkey --model /tmp/tiny --lengths 200 --depths 0.5 --samples 2 --l-base 64',
  async run({ values }) {
    const lengths = listValue(values, 'lengths', { integer: true, min: 1 })!;
    const depths = listValue(values, 'depths', { min: 0, max: 1 })!;
    const samples = intValue(values, 'samples', { min: 1 })!;
    const seed = intValue(values, 'seed')!;
    const modes = (stringValue(values, 'modes') ?? '').split(',').map((s) => s.trim()) as PasskeyMode[];
    for (const m of modes)
      if (!MODES.includes(m)) throw new UsageError(`--modes: unknown mode '${m}' (use mamba, decimamba)`);

    const { checkpoint, engine, defaults } = await openModel(values);
    const decimation = decimationFromFlags(values, checkpoint.config.nLayer, defaults.decimation);
    // --l-base fixes the paper's single L_base; otherwise the model's length-adaptive budget, as the API's "auto"
    const lBaseByLength = values['l-base'] === undefined ? defaults.lBaseByLength : undefined;
    const haystackPath = stringValue(values, 'haystack') ?? join(checkpoint.dir, 'haystack.txt');
    const haystackIds = encodeCorpus(checkpoint.tokenizer, haystackText(await readTextFile('haystack', haystackPath)));
    if (haystackIds.length === 0)
      throw new UsageError(`--haystack ${haystackPath}: no text left after removing digits`);

    try {
      // Fail before any work when a length cannot hold the needle and the question.
      for (const length of lengths)
        buildPasskeyPrompt(
          checkpoint.tokenizer,
          haystackIds,
          length,
          depths[0]!,
          passkeyRng(seed, length, depths[0]!, 0),
        );
    } catch (err) {
      throw new UsageError(`--lengths: ${(err as Error).message}`);
    }
    process.stderr.write(
      `[${engine.name}] passkey on ${checkpoint.dir}: DeciMamba layers [${decimation.layers}] β=${decimation.beta} ` +
        `L_base=${lBaseByLength ? lengths.map((l) => `${lBaseForLength(lBaseByLength, l)}@${l}`).join(',') : decimation.lBase} min=${decimation.minSeqLen}\n`,
    );
    const progress = createProgress(lengths.length * depths.length * samples * modes.length, 'passkey');
    let result: Awaited<ReturnType<typeof runPasskey>>;
    try {
      result = await runPasskey(engine, checkpoint.tokenizer, haystackIds, {
        lengths,
        depths,
        samples,
        seed,
        modes,
        decimation: (length) => decimationForLength(decimation, lBaseByLength, length),
        onSample: (s) => progress.tick(`L=${s.length} depth=${s.depth} ${s.mode} ${s.correct ? 'ok' : 'miss'}`),
      });
    } catch (err) {
      if (err instanceof RangeError) throw new UsageError(err.message);
      throw err;
    } finally {
      progress.stop();
    }
    const toStdout = await writeJsonOutput(values, {
      engine: engine.name,
      model: checkpoint.dir,
      haystack: haystackPath,
      lengths,
      depths,
      samplesPerCell: samples,
      seed,
      decimation,
      lBaseByLength: lBaseByLength ?? null,
      ...result,
    });
    if (!toStdout) process.stdout.write(table(result.cells, modes));
  },
});
