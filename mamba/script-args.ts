// Command-line options of the repo's scripts (bench/, checks, builds): node's parseArgs plus the two things every
// script owes its user: `--help` prints what it does and its options, and a wrong option is a short message with
// exit status 2 instead of a stack trace.
import { parseArgs } from 'node:util';

type OptionSpec = { type: 'string' | 'boolean'; short?: string; default?: string | boolean; multiple?: false };
type Values<O extends Record<string, OptionSpec>> = {
  [K in keyof O]: O[K]['type'] extends 'boolean'
    ? boolean
    : O[K] extends { default: string }
      ? string
      : string | undefined;
};

/** `about`: the usage line(s) and what the script does; the options and their defaults are listed after it. */
export function scriptArgs<O extends Record<string, OptionSpec>>(about: string, options: O): Values<O> {
  const help = () => {
    const rows = Object.entries(options).map(([name, o]) => {
      const flag = `--${name}${o.type === 'string' ? ' <value>' : ''}`;
      return `  ${flag.padEnd(28)}${o.default !== undefined && o.default !== false ? `default: ${o.default}` : ''}`;
    });
    return `${about.trim()}\n\nOptions:\n${rows.join('\n')}\n  ${'--help, -h'.padEnd(28)}this text`;
  };
  try {
    const all = { ...options, help: { type: 'boolean' as const, short: 'h' } };
    const values = parseArgs({ options: all }).values as Record<string, unknown>;
    if (values.help) {
      console.log(help());
      process.exit(0);
    }
    return values as unknown as Values<O>;
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${help()}`);
    process.exit(2);
  }
}
