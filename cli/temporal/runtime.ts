// The Temporal Core runtime, installed once per process before any connection or worker. The CLI
// handles its own signals (Ctrl-C detaches a run), so Temporal must not shut workers down itself.
// Its log (retries, activity failures), including the native core's own lines, which would
// otherwise be printed in colour straight to the terminal, goes to a file: the terminal belongs to
// the progress view.

import fs from 'node:fs';
import path from 'node:path';
import { DefaultLogger, makeTelemetryFilterString, Runtime, type LogEntry, type LogLevel } from '@temporalio/worker';

let installed = false;

/** `logFile`: where SDK warnings go (null: stderr). SIEVE_LOG_LEVEL overrides the level (WARN). */
export function installRuntime(logFile: string | null = null) {
  if (installed) return;
  const level = (process.env.SIEVE_LOG_LEVEL as LogLevel | undefined) ?? 'WARN';
  let sink: ((entry: LogEntry) => void) | undefined;
  if (logFile) {
    fs.mkdirSync(path.dirname(logFile), { recursive: true, mode: 0o700 });
    sink = (entry) => {
      const at = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
      const meta = entry.meta ? ` ${JSON.stringify(entry.meta, (_k, v) => (v instanceof Error ? { message: v.message, stack: v.stack } : v))}` : '';
      try {
        fs.appendFileSync(logFile, `${at} [${entry.level}] ${entry.message}${meta}\n`);
      } catch {
        // A full or read-only disk must not take the worker down with it: the line is lost, the
        // failure it reports reaches the run's record through Temporal.
      }
    };
  }
  Runtime.install({
    shutdownSignals: [],
    logger: new DefaultLogger(level, sink),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: level }), forward: {} } },
  });
  installed = true;
}

export function quietLogger() {
  return new DefaultLogger('WARN');
}
