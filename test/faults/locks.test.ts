// The embedded server's lock and leases against what dead or broken writers leave, with the real
// CLI: a lock file that is empty (a full disk), cut short, garbage, left by a dead process or by a
// pid that now belongs to another process; stale leases of the same kinds. Each command works at
// once, saying on stderr what it took over or removed, and live leases are never touched. And a
// server whose only user was killed is stopped by its watchdog, with no sieve command run.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { DevServer, liveness } from '../../cli/temporal/dev-server';
import { lastJson, sieve, start, tempHome, tinyRecipe, waitFor, writeRecipe } from '../cli/helpers';
import { exited, leaseOf, show } from './processes';

const home = tempHome('locks');
const server = new DevServer(home);
const lock = path.join(server.dir, 'lock');
const leases = path.join(server.dir, 'leases');
const recipe = writeRecipe(home, 'tiny.yaml', tinyRecipe({ name: 'locks' }));
let firstRun: string;

before(async () => {
  const r = await sieve(home, ['run', recipe, '--json']);
  assert.equal(r.code, 0, r.stderr);
  firstRun = lastJson<{ id: string }>(r.stdout).id;
});
after(async () => {
  await server.stop();
});

/** A process that has exited, with the start time it had: its pid is dead (or, rarely, taken by a newer process). */
function deadProcess() {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(require("fs").readFileSync("/proc/self/stat","utf8"))'], { encoding: 'utf8' });
  const pid = Number(child.stdout.split(' ')[0]);
  return { pid, start: child.stdout.slice(child.stdout.lastIndexOf(')') + 2).split(' ')[19] };
}

const owner = (id: { pid: number; start: string }) => JSON.stringify({ ...id, token: crypto.randomBytes(16).toString('hex') });
const dead = deadProcess();
const recycled = { pid: process.pid, start: '1' };

const LOCKS: { what: string; content: string; says: string }[] = [
  { what: 'empty (a full disk)', content: '', says: 'that was empty (its writer stopped before naming itself)' },
  { what: 'cut short ("12" of a pid)', content: '12', says: 'that names no live owner ("12")' },
  { what: 'naming pid 0', content: '0', says: 'that names no live owner ("0")' },
  { what: 'of garbage', content: '{"pid": -3, "start"', says: 'that names no live owner ("{\\"pid\\": -3, \\"start\\"")' },
  { what: 'left by a dead process', content: owner(dead), says: `left by pid ${dead.pid}, which is gone` },
  { what: 'left by a pid now used by another process', content: owner(recycled), says: `left by pid ${process.pid}, which is gone (the pid now belongs to another process)` },
];

for (const { what, content, says } of LOCKS) {
  test(`a lock file ${what} is taken over and the run works`, { timeout: 60_000 }, async () => {
    fs.writeFileSync(lock, content);
    const r = await sieve(home, ['run', recipe, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stderr.includes(`sieve: took over a stale lock ${lock} ${says}.\n`), r.stderr);
    assert.equal(r.stderr.match(/took over/g)?.length, 1, 'taken over once');
    assert.equal(fs.existsSync(lock), false, 'released after use');
    const run = await show(home, lastJson<{ id: string }>(r.stdout).id);
    assert.deepEqual(run.stages.map((s) => s.status), ['cached', 'cached']);
    assert.equal(server.record(), null, 'the run stopped its server on the way out');
  });
}

test('stale leases are removed by the next process that joins the server, live ones are kept', { timeout: 60_000 }, async () => {
  const mine = await server.lease();
  try {
    const planted: [string, string, string][] = [
      ['12', '', 'that was empty (its writer stopped before naming itself)'],
      ['999999', '12', 'that names no live owner ("12")'],
      [String(process.pid), JSON.stringify({ pid: process.pid, start: null }), `that names no live owner (${JSON.stringify(JSON.stringify({ pid: process.pid, start: null }))})`],
      [`${dead.pid}-${dead.start}`, JSON.stringify(dead), `left by pid ${dead.pid}, which is gone`],
      [`${process.pid}-1`, JSON.stringify(recycled), `left by pid ${process.pid}, which is gone (the pid now belongs to another process)`],
    ];
    for (const [name, content] of planted) fs.writeFileSync(path.join(leases, name), content);

    const r = await sieve(home, ['cancel', firstRun]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^sieve: run ${firstRun} is not running \\(it is completed\\)\\.$`, 'm'));
    for (const [name, , says] of planted) assert.ok(r.stderr.includes(`sieve: removed a stale lease ${path.join(leases, name)} ${says}.\n`), r.stderr);
    assert.deepEqual(fs.readdirSync(leases), [path.basename(leaseOf(home, process.pid)!)], 'only the live lease is left');
    assert.equal(server.record()?.pid, mine.record.pid, 'the server stays for its live user');
  } finally {
    await mine.release();
  }
  assert.equal(server.record(), null, 'the last live user stops it');
});

test('status stops an embedded server nobody leases and forgets one that is gone', { timeout: 60_000 }, async () => {
  const rec = await server.ensure();
  const r = await sieve(home, ['status']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'no unfinished runs.\n');
  // The server's watchdog may get there first; either says so in the same words.
  const said = r.stderr + fs.readFileSync(server.logFile, 'utf8');
  assert.ok(said.includes(`sieve: stopped the embedded Temporal server (pid ${rec.pid}) of ${home}, which no live sieve process was using.\n`), said);
  assert.equal(server.record(), null);

  fs.writeFileSync(path.join(server.dir, 'server.json'), JSON.stringify({ ...dead, port: 1, uiPort: null, owner: 'embedded', ip: '127.0.0.1', startedAt: new Date().toISOString() }));
  const again = await sieve(home, ['status']);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(fs.existsSync(path.join(server.dir, 'server.json')), false, 'the record of a server that is gone is removed');
});

test('a server whose only user was killed is stopped by its watchdog, with no sieve command run', { timeout: 60_000 }, async () => {
  const worker = start(home, ['worker']);
  let stderr = '';
  worker.stderr!.on('data', (d) => (stderr += d));
  await waitFor('the worker to serve', () => stderr.includes('sieve worker: serving'));
  const rec = server.record()!;
  const lease = leaseOf(home, worker.pid!)!;
  worker.kill('SIGKILL');
  await exited(worker);
  await waitFor('the watchdog to stop the server', () => liveness(rec) !== 'alive', 30_000);
  const log = fs.readFileSync(server.logFile, 'utf8');
  assert.ok(log.includes(`sieve: removed a stale lease ${lease} left by pid ${worker.pid}, which is gone.\n`), log);
  assert.ok(log.includes(`sieve: stopped the embedded Temporal server (pid ${rec.pid}) of ${home}, which no live sieve process was using.\n`), log);
  assert.equal(server.record(), null);
});
