// A small command registry: each subcommand declares its flags once; parsing and --help come from that declaration.
// To add a subcommand (e.g. export-onnx), write cli/commands/<name>.ts calling registerCommand and import it in
// cli/commands/index.ts.

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Placeholder shown in --help, e.g. '<dir>'. */
  value?: string;
  description: string;
  default?: string;
}

export type ParsedValues = Record<string, string | boolean | string[] | undefined>;

export interface CommandContext {
  values: ParsedValues;
  positionals: string[];
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** Usage line after `deciserve`, e.g. 'generate [options] <prompt...>'. */
  usage: string;
  options: Record<string, OptionSpec>;
  /** Extra help text (examples, notes). */
  details?: string;
  /** Returns the exit code (default 0). */
  run(ctx: CommandContext): Promise<number | void>;
}

/** A user mistake (bad flag, bad value, missing file): printed as one line, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const registry = new Map<string, CommandSpec>();

export function registerCommand(spec: CommandSpec): void {
  if (registry.has(spec.name)) throw new Error(`command ${spec.name} registered twice`);
  registry.set(spec.name, spec);
}

export function getCommand(name: string): CommandSpec | undefined {
  return registry.get(name);
}

export function listCommands(): CommandSpec[] {
  return [...registry.values()];
}

export function commandHelp(spec: CommandSpec): string {
  const rows = Object.entries(spec.options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.type === 'string' ? ` ${o.value ?? '<value>'}` : ''}`;
    const extra = [o.multiple ? 'repeatable' : '', o.default !== undefined ? `default: ${o.default}` : '']
      .filter(Boolean)
      .join('; ');
    return [flag, o.description + (extra ? ` (${extra})` : '')];
  });
  rows.push(['-h, --help', 'show this help']);
  const width = Math.max(...rows.map(([f]) => f!.length));
  const lines = [
    `Usage: deciserve ${spec.usage}`,
    '',
    spec.summary,
    '',
    'Options:',
    ...rows.map(([f, d]) => `  ${f!.padEnd(width)}  ${d}`),
  ];
  if (spec.details) lines.push('', spec.details.trimEnd());
  return lines.join('\n') + '\n';
}
