// Which Temporal to talk to: TEMPORAL_ADDRESS when set (a shared cluster, workers elsewhere),
// otherwise the embedded dev server of this SIEVE_HOME, started on demand.

import { Client, Connection } from '@temporalio/client';
import { DevServer, NAMESPACE } from './dev-server';

export interface TemporalSession {
  client: Client;
  address: string;
  /** True when sieve runs the server itself (and so must run the workers too). */
  embedded: boolean;
  /** Embedded mode: restarts the dev server (same store, same port) if its process died. */
  keepAlive(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Connects to Temporal. In embedded mode `start: false` returns null instead of starting a server,
 * for read-only commands that should not spin one up just to look.
 */
export async function openTemporal(home: string, opts: { start: boolean; whileStarting?: () => void }): Promise<TemporalSession | null> {
  const remote = process.env.TEMPORAL_ADDRESS;
  if (remote) {
    const connection = await Connection.connect({ address: remote }).catch((err: Error) => {
      throw new Error(`Cannot reach Temporal at TEMPORAL_ADDRESS=${remote}: ${err.message}`);
    });
    return { client: new Client({ connection, namespace: NAMESPACE }), address: remote, embedded: false, keepAlive: async () => {}, close: () => connection.close() };
  }
  const server = new DevServer(home);
  if (!opts.start && !server.record()) return null;
  const lease = await server.lease({ whileStarting: opts.whileStarting });
  const connection = await Connection.connect({ address: lease.address });
  return {
    client: new Client({ connection, namespace: NAMESPACE }),
    address: lease.address,
    embedded: true,
    keepAlive: async () => {
      if (!server.record()) await server.ensure();
    },
    close: async () => {
      await connection.close();
      await lease.release();
    },
  };
}
