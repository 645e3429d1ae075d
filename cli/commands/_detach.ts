// `--detach` in embedded mode: the run needs a worker after this process exits, so a background
// `sieve worker --run <id>` serves it and exits when it closes. Its log is SIEVE_HOME/logs/<id>.log.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DevServer } from '../temporal/dev-server';
import type { TaskQueue } from '../../workflows/contract';

export function spawnDetachedWorker(home: string, runId: string, queues: TaskQueue[]) {
  const logDir = path.join(home, 'logs');
  fs.mkdirSync(logDir, { recursive: true });
  const log = fs.openSync(path.join(logDir, `${runId}.log`), 'a');
  const bin = path.resolve(__dirname, '..', 'sieve.js');
  const args = [bin, 'worker', '--run', runId, ...queues.flatMap((q) => ['--queue', q])];
  const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', log, log], env: { ...process.env, SIEVE_HOME: home } });
  fs.closeSync(log);
  child.unref();
  // The server must not stop when this process leaves, before the worker has connected.
  if (child.pid) new DevServer(home).leaseFor(child.pid);
}
