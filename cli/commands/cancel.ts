// `sieve cancel <run>`: cancels the run's workflow. The running stage sees the cancellation at its
// next heartbeat, writes a checkpoint and stops; `sieve resume` can continue it later.

import { openTemporal } from '../temporal/connect';
import { defineCommand, sieveHome } from './_shared';

export default defineCommand({
  name: 'cancel',
  description: 'cancel a run (its stages checkpoint and stop; resume continues it)',
  positionals: ['<run>'],
  options: {},
  async run({ positionals: [runId] }) {
    const temporal = await openTemporal(sieveHome(), { start: true });
    try {
      const handle = temporal!.client.workflow.getHandle(runId);
      const desc = await handle.describe().catch(() => {
        throw new Error(`no run "${runId}" is known to Temporal at ${temporal!.address}.`);
      });
      if (desc.status.name !== 'RUNNING') throw new Error(`run "${runId}" is not running (it is ${desc.status.name.toLowerCase()}).`);
      await handle.cancel();
      console.log(`cancellation requested for ${runId}; its stages will checkpoint and stop.`);
    } finally {
      await temporal!.close();
    }
  },
});
