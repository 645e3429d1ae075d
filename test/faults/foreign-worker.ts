// A compute worker for the `cpu` queue as a machine sieve cannot look into would run it: its
// identity names another host, so once it dies nobody can tell, and cancelling its stage has to
// wait for Temporal's heartbeat timeout. Started by test/faults/orphans.test.ts:
// node --require tsx/cjs test/faults/foreign-worker.ts <address> <SIEVE_HOME>

import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createComputeActivities } from '../../activities';
import { NAMESPACE } from '../../cli/temporal/dev-server';
import { TASK_QUEUES } from '../../workflows/contract';

export const FOREIGN_IDENTITY = 'sieve:1:1@elsewhere.invalid';

async function main(address: string, home: string) {
  Runtime.install({ logger: new DefaultLogger('WARN') });
  const connection = await NativeConnection.connect({ address });
  const worker = await Worker.create({
    connection,
    namespace: NAMESPACE,
    taskQueue: TASK_QUEUES.cpu,
    identity: FOREIGN_IDENTITY,
    activities: createComputeActivities({ home }),
    maxConcurrentActivityTaskExecutions: 1,
    maxHeartbeatThrottleInterval: '1 second',
  });
  process.stdout.write('polling\n');
  await worker.run();
}

if (require.main === module) {
  main(process.argv[2], process.argv[3]).catch((err: Error) => {
    process.stderr.write(`foreign worker: ${err.message}\n`);
    process.exit(1);
  });
}
