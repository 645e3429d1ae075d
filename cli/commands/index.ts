// Every subcommand, loaded lazily so `sieve validate` does not pay for Temporal or the engine.

import type { Command } from './_shared';

// CommonJS `require` rather than `import()`: the package is CommonJS, run through tsx's require hook.
const load = (id: string) => async () => (require(id) as { default: Command<any> }).default as Command;

export const commands = {
  run: load('./run'),
  validate: load('./validate'),
  schema: load('./schema'),
  status: load('./status'),
  history: load('./history'),
  show: load('./show'),
  compare: load('./compare'),
  resume: load('./resume'),
  reproduce: load('./reproduce'),
  cancel: load('./cancel'),
  gc: load('./gc'),
  export: load('./export'),
  verify: load('./verify'),
  import: load('./import'),
  worker: load('./worker'),
  server: load('./server'),
} satisfies Record<string, () => Promise<Command>>;

export type CommandName = keyof typeof commands;
