// The Temporal Core runtime, installed once per process before any connection or worker. The CLI
// handles its own signals (Ctrl-C detaches a run), so Temporal must not shut workers down itself.

import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';

let installed = false;

export function installRuntime() {
  if (installed) return;
  Runtime.install({ shutdownSignals: [], logger: new DefaultLogger((process.env.SIEVE_LOG_LEVEL as LogLevel | undefined) ?? 'WARN') });
  installed = true;
}

export function quietLogger() {
  return new DefaultLogger('WARN');
}
