// `deciserve` entry point: dispatch to a registered subcommand; user errors become one line on stderr.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import './commands/index.ts';
import { commandHelp, getCommand, listCommands, UsageError, type CommandSpec, type ParsedValues } from './registry.ts';

function topHelp(): string {
  const cmds = listCommands();
  const width = Math.max(...cmds.map((c) => c.name.length));
  return [
    'Usage: deciserve <command> [options]',
    '',
    'Serve Mamba language models with long contexts (Mamba-1 and DeciMamba).',
    '',
    'Commands:',
    ...cmds.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    "Run 'deciserve <command> --help' for a command's options.",
    '',
  ].join('\n');
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function parse(spec: CommandSpec, args: string[]): { values: ParsedValues; positionals: string[] } {
  const options = Object.fromEntries(
    Object.entries(spec.options).map(([name, o]) => [
      name,
      {
        type: o.type,
        ...(o.short ? { short: o.short } : {}),
        ...(o.multiple ? { multiple: true } : {}),
        ...(o.default !== undefined ? { default: o.default } : {}),
      },
    ]),
  );
  try {
    const { values, positionals } = parseArgs({
      args,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    return { values: values as ParsedValues, positionals };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const flag = /'([^']+)'/.exec(e.message)?.[1] ?? '';
      throw new UsageError(`${spec.name}: unknown option ${flag} (see 'deciserve ${spec.name} --help')`);
    }
    throw new UsageError(`${spec.name}: ${e.message.split('\n')[0]}`);
  }
}

/** Runs the CLI on `argv` (without node and the script) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    const [name, ...rest] = argv;
    if (name === undefined || name === '--help' || name === '-h') {
      process.stdout.write(topHelp());
      return 0;
    }
    if (name === '--version' || name === '-v') {
      process.stdout.write(version() + '\n');
      return 0;
    }
    if (name === 'help') {
      const spec = rest[0] ? getCommand(rest[0]) : undefined;
      if (rest[0] && !spec) throw new UsageError(`unknown command '${rest[0]}' (see 'deciserve --help')`);
      process.stdout.write(spec ? commandHelp(spec) : topHelp());
      return 0;
    }
    const spec = getCommand(name);
    if (!spec) throw new UsageError(`unknown command '${name}' (see 'deciserve --help')`);
    const { values, positionals } = parse(spec, rest);
    if (values.help) {
      process.stdout.write(commandHelp(spec));
      return 0;
    }
    return (await spec.run({ values, positionals })) ?? 0;
  } catch (err) {
    const e = err as Error;
    const message = (e?.message ?? String(err)).split('\n')[0];
    process.stderr.write(`deciserve: ${message}\n`);
    if (process.env.DECISERVE_DEBUG && e?.stack) process.stderr.write(e.stack + '\n');
    return err instanceof UsageError ? 2 : 1;
  }
}
