// `sieve server`: a Temporal dev server with its Web UI for operators, persisted under SIEVE_HOME.
// It runs in the foreground until Ctrl-C. Runs started meanwhile use it and leave it running; an
// embedded server that no live process uses any more is stopped first, one still in use refuses.

import { DevServer } from '../temporal/dev-server';
import { UsageError, defineCommand, sieveHome } from './_shared';

export default defineCommand({
  name: 'server',
  description: 'run a Temporal dev server with its Web UI (foreground, Ctrl-C stops it)',
  positionals: [],
  options: {
    port: { type: 'string', description: 'frontend gRPC port', default: '7233' },
    'ui-port': { type: 'string', description: 'Web UI port (default: --port + 1000)' },
    ip: { type: 'string', description: 'interface to bind; 0.0.0.0 lets GPU hosts connect (no auth: firewall it)', default: '127.0.0.1' },
  },
  async run({ values }) {
    const port = parsePort(values.port as string | undefined, 7233, '--port');
    const uiPort = parsePort(values['ui-port'] as string | undefined, port + 1000, '--ui-port');
    const server = new DevServer(sieveHome());
    // An embedded server left by killed runs would otherwise block this one: reaping stops it.
    await server.reap();
    const existing = server.record();
    if (existing)
      throw new Error(`a Temporal dev server for ${sieveHome()} is already running on 127.0.0.1:${existing.port} (pid ${existing.pid}, ${existing.owner === 'embedded' ? 'started by a run, headless' : 'started by `sieve server`'}).`);
    const options = { owner: 'sieve-server' as const, port, uiPort, ip: (values.ip as string | undefined) ?? '127.0.0.1' };
    const rec = await server.ensure(options);
    const host = rec.ip === '0.0.0.0' ? '<this host>' : rec.ip;
    console.log(`Temporal dev server: ${host}:${rec.port} (store ${server.dbFile})`);
    console.log(`Web UI: http://${rec.ip === '0.0.0.0' ? 'localhost' : rec.ip}:${rec.uiPort}/namespaces/default/workflows`);
    console.log(`Workers elsewhere: TEMPORAL_ADDRESS=${host}:${rec.port} sieve worker --queue gpu`);
    // The server is a detached child, so this loop is what keeps the command in the foreground;
    // it also brings a server that died back on the same store and ports.
    let restarting = false;
    const watch = setInterval(() => {
      if (restarting || server.record()) return;
      restarting = true;
      server
        .ensure(options)
        .then(() => console.log(`the dev server had stopped; restarted it on ${options.ip}:${port}`))
        .catch((err: Error) => console.error(`sieve server: could not restart the dev server: ${err.message}`))
        .finally(() => (restarting = false));
    }, 2_000);
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    clearInterval(watch);
    await server.stop();
    console.log('stopped');
  },
});

function parsePort(raw: string | undefined, fallback: number, flag: string): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new UsageError(`${flag} must be a port number, got "${raw}".`);
  return n;
}
