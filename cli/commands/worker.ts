// `sieve worker`: serve task queues until Ctrl-C. On the control host it serves `sieve` (the
// workflow and SQLite recording) and `cpu`; a GPU host serves `gpu` against a shared cluster
// (TEMPORAL_ADDRESS). With --run it exits once that run has closed (used by `sieve run --detach`).

import { openTemporal } from '../temporal/connect';
import { TASK_QUEUES, type TaskQueue } from '../../workflows/contract';
import { QUEUES, createWorkers } from '../temporal/worker';
import { UsageError, defineCommand, sieveHome } from './_shared';

export default defineCommand({
  name: 'worker',
  description: 'serve task queues (sieve, cpu, gpu) until Ctrl-C',
  positionals: [],
  options: {
    queue: { type: 'string', multiple: true, description: 'queue to serve; repeat for several (default: sieve and cpu)' },
    run: { type: 'string', description: 'exit once this run has closed' },
  },
  async run({ values }) {
    const queues = ((values.queue as string[] | undefined) ?? [TASK_QUEUES.control, TASK_QUEUES.cpu]) as TaskQueue[];
    for (const q of queues) if (!QUEUES.includes(q)) throw new UsageError(`--queue must be one of ${QUEUES.join(', ')}, got "${q}".`);
    const home = sieveHome();
    const temporal = (await openTemporal(home, { start: true }))!;
    const workers = await createWorkers({ target: temporal.target, home, queues });
    const stop = () => workers.shutdown();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    const runId = values.run as string | undefined;
    if (runId) {
      temporal.client.workflow
        .getHandle(runId)
        .result()
        .catch(() => undefined)
        .finally(stop);
    }
    console.error(`sieve worker: serving ${queues.join(', ')} on ${temporal.address}${runId ? ` until run ${runId} closes` : ''}`);
    try {
      await workers.run();
    } finally {
      await temporal.close();
    }
  },
});
