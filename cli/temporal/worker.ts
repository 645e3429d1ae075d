// Temporal workers for sieve's task queues. `sieve` carries the pipeline workflow and the control
// activities that write SQLite; `cpu` and `gpu` carry the compute activities (stages). The
// embedded mode runs `sieve` + `cpu` in-process; `sieve worker --queue gpu` runs on GPU hosts.
// Every worker names its process and host in its identity (workerIdentity), so the CLI can tell a
// worker that died from one that is idle.

import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { bundleWorkflowCode, NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { createComputeActivities, createControlActivities } from '../../activities';
import { cudaUnavailable } from '../cuda';
import { TASK_QUEUES, type TaskQueue } from '../../workflows/contract';
import { workerIdentity, type TemporalTarget } from './connect';
import { installRuntime, quietLogger } from './runtime';

export const QUEUES: readonly TaskQueue[] = Object.values(TASK_QUEUES);

const ROOT = path.resolve(__dirname, '..', '..');
const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');

/**
 * The workflow bundle, cached by a hash of the sources it is built from, because webpack takes
 * seconds and every `sieve run` starts a worker. The cache lives beside the installation
 * (node_modules/.cache, shared by every SIEVE_HOME), or under SIEVE_HOME where that is read-only.
 */
export async function workflowBundle(home: string): Promise<{ code: string }> {
  const hash = crypto.createHash('sha256');
  for (const dir of ['workflows', 'schemas']) {
    const files = (fs.readdirSync(path.join(ROOT, dir), { recursive: true }) as string[]).filter((f) => f.endsWith('.ts')).sort();
    for (const file of files) hash.update(file).update(fs.readFileSync(path.join(ROOT, dir, file)));
  }
  hash.update(require('@temporalio/worker/package.json').version);
  const name = `workflows-${hash.digest('hex').slice(0, 16)}.js`;
  const dirs = [path.join(ROOT, 'node_modules', '.cache', 'sieve'), path.join(home, 'cache')];
  for (const dir of dirs) {
    const cached = path.join(dir, name);
    if (fs.existsSync(cached)) return { code: fs.readFileSync(cached, 'utf8') };
  }
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS, logger: quietLogger() });
  for (const dir of dirs) {
    try {
      fs.mkdirSync(dir, { recursive: true });
      const tmp = path.join(dir, `${name}.${process.pid}.tmp`);
      fs.writeFileSync(tmp, code);
      fs.renameSync(tmp, path.join(dir, name));
      break;
    } catch {
      // read-only: try the next place; without any, the next run bundles again
    }
  }
  return { code };
}

export interface WorkerSet {
  run(): Promise<void>;
  shutdown(): void;
}

/** Workers for the given queues on one connection. */
export async function createWorkers(opts: { target: TemporalTarget; home: string; queues: readonly TaskQueue[] }): Promise<WorkerSet> {
  installRuntime(path.join(opts.home, 'logs', 'worker.log'));
  // A host without a usable CUDA backend must not take GPU work it cannot do.
  if (opts.queues.includes(TASK_QUEUES.gpu)) {
    const why = cudaUnavailable();
    if (why) throw new Error(`this machine cannot serve the gpu queue: ${why}.`);
  }
  const connection = await NativeConnection.connect(opts.target.options);
  const workers: Worker[] = [];
  const common: Partial<WorkerOptions> = { connection, namespace: opts.target.namespace, identity: workerIdentity() };
  for (const queue of opts.queues) {
    if (queue === TASK_QUEUES.control) {
      workers.push(
        await Worker.create({
          ...common,
          connection,
          taskQueue: queue,
          workflowBundle: await workflowBundle(opts.home),
          activities: createControlActivities({ home: opts.home }),
        }),
      );
    } else {
      workers.push(
        await Worker.create({
          ...common,
          connection,
          taskQueue: queue,
          activities: createComputeActivities({ home: opts.home }),
          // One stage at a time per worker: a stage already uses every core (or the GPU).
          maxConcurrentActivityTaskExecutions: 1,
          // No grace period: on shutdown a running stage is cancelled at once, writes a checkpoint,
          // heartbeats it and fails its attempt, which another worker then resumes.
          shutdownGraceTime: 0,
          // Heartbeats carry live progress and the latest checkpoint: send them at least every second.
          maxHeartbeatThrottleInterval: '1 second',
        }),
      );
    }
  }
  return {
    run: async () => {
      try {
        await Promise.all(workers.map((w) => w.run()));
      } finally {
        await connection.close();
      }
    },
    shutdown: () => {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}
