// What every subcommand shares: the command shape, flag parsing (node:util parseArgs), SIEVE_HOME,
// and plain-text tables.

import { parseArgs } from 'node:util';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A run (or stage, or file) that the command was asked about does not exist. */
export class NotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotFoundError';
  }
}

type OptionSpec = { type: 'boolean' | 'string'; short?: string; multiple?: boolean; description: string; default?: string | boolean };

export interface Command<O extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
  name: string;
  description: string;
  /** Positional arguments, e.g. ['<recipe>'] or ['[<run>]']. */
  positionals: string[];
  options: O;
  run(args: ParsedArgs): Promise<number | void>;
}

export interface ParsedArgs {
  positionals: string[];
  values: Record<string, string | boolean | string[] | undefined>;
}

/** `--json` is common to every command that prints data. */
export const jsonOption = { json: { type: 'boolean', description: 'print machine-readable JSON (see schemas/cli.ts)' } } as const satisfies Record<string, OptionSpec>;

/** `--html <file>`: the command's tables and charts as one self-contained page (cli/report/). */
export const htmlOption = {
  html: { type: 'string', description: 'also write the tables and charts as one self-contained HTML file here' },
} as const satisfies Record<string, OptionSpec>;

export function defineCommand<O extends Record<string, OptionSpec>>(c: Command<O>): Command<O> {
  return c;
}

export function parseCommandArgs(command: Command, argv: string[]): ParsedArgs | 'help' {
  if (argv.includes('--help') || argv.includes('-h')) {
    printCommandHelp(command);
    return 'help';
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: command.options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message.replace(/\. To specify.*$/s, '')} (sieve ${command.name} --help)`);
  }
  const required = command.positionals.filter((p) => p.startsWith('<'));
  const optional = command.positionals.filter((p) => p.startsWith('['));
  if (parsed.positionals.length < required.length)
    throw new UsageError(`missing ${required.slice(parsed.positionals.length).join(' ')} (usage: sieve ${command.name} ${command.positionals.join(' ')})`);
  const variadic = command.positionals.some((p) => p.includes('...'));
  if (!variadic && parsed.positionals.length > required.length + optional.length)
    throw new UsageError(`unexpected argument "${parsed.positionals[required.length + optional.length]}" (usage: sieve ${command.name} ${command.positionals.join(' ')})`);
  return { positionals: parsed.positionals, values: parsed.values as ParsedArgs['values'] };
}

export function printHelp(all: Command[]) {
  const lines = ['sieve — declarative, durable model-compression pipelines', '', 'Usage: sieve <command> [options]', '', 'Commands:'];
  const width = Math.max(...all.map((c) => `${c.name} ${c.positionals.join(' ')}`.length));
  for (const c of all) lines.push(`  ${`${c.name} ${c.positionals.join(' ')}`.padEnd(width)}  ${c.description}`);
  lines.push('', 'Environment: SIEVE_HOME (default ./.sieve), TEMPORAL_ADDRESS, TEMPORAL_CLI_PATH.', 'Run `sieve <command> --help` for its options.');
  console.log(lines.join('\n'));
}

function printCommandHelp(c: Command) {
  const lines = [`Usage: sieve ${c.name} ${c.positionals.join(' ')} [options]`, '', c.description];
  const opts = Object.entries(c.options);
  if (opts.length) {
    lines.push('', 'Options:');
    for (const [name, spec] of opts) {
      const flag = `--${name}${spec.type === 'string' ? ' <value>' : ''}${spec.short ? `, -${spec.short}` : ''}`;
      lines.push(`  ${flag.padEnd(26)} ${spec.description}${spec.default !== undefined ? ` (default ${spec.default})` : ''}`);
    }
  }
  console.log(lines.join('\n'));
}

export { sieveHome } from '../../activities/store/artifacts';

/** A left-aligned text table; numbers right-aligned. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => String(c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r, ri) =>
      r
        .map((c, i) => (ri > 0 && typeof rows[ri - 1][i] === 'number' ? c.padStart(widths[i]) : c.padEnd(widths[i])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function formatDuration(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return '-';
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s - m * 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function printJson(value: unknown) {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
