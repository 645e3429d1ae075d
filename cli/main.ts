// Entry point of the `sieve` command: finds the subcommand, parses its flags, runs it, and turns
// any error into one clear line on stderr and a non-zero exit code; with `--json`, the error is
// also printed on stdout as `{ "error": { message, code, path? } }` (schemas/cli.ts ErrorOutput).

import type { ErrorOutput } from '../schemas/cli';
import { commands, type CommandName } from './commands';
import { UsageError, parseCommandArgs, printHelp } from './commands/_shared';

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    printHelp(await loadAll());
    return name ? 0 : 2;
  }
  if (name === '--version') {
    console.log(require('../package.json').version);
    return 0;
  }
  if (!(name in commands)) {
    const near = nearest(name, Object.keys(commands));
    throw new UsageError(`unknown command "${name}"${near ? ` (did you mean "${near}"?)` : ''}; run \`sieve --help\` for the list.`);
  }
  const command = await commands[name as CommandName]();
  const args = parseCommandArgs(command, rest);
  if (args === 'help') return 0;
  return (await command.run(args)) ?? 0;
}

async function loadAll() {
  return Promise.all(Object.values(commands).map((load) => load()));
}

function nearest(word: string, options: string[]): string | null {
  const dist = (a: string, b: string) => {
    const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)]);
    for (let j = 1; j <= b.length; j++) d[0][j] = j;
    for (let i = 1; i <= a.length; i++)
      for (let j = 1; j <= b.length; j++)
        d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    return d[a.length][b.length];
  };
  const best = options.map((o) => [o, dist(word, o)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= 3 ? best[0] : null;
}

/** The `code` of ErrorOutput, by the error class's name. */
const ERROR_CODES: Record<string, string> = {
  UsageError: 'usage',
  RecipeError: 'invalid-recipe',
  NotFoundError: 'not-found',
  DatabaseLostError: 'database-lost',
  DatabaseUnusableError: 'database-unusable',
  TemporalNotFoundError: 'temporal-not-found',
};

function errorOutput(err: unknown): ErrorOutput {
  const message = err instanceof Error ? err.message : String(err);
  const code = (err instanceof Error && ERROR_CODES[err.name]) || 'error';
  const path = (err as { issues?: Array<{ path: string }> }).issues?.[0]?.path;
  return { error: { message, code, ...(path ? { path } : {}) } };
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => process.exit(code),
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`sieve: ${message}\n`);
    if (process.env.SIEVE_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(errorOutput(err), null, 2)}\n`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
