// Storage faults mid-run, with real processes (`sieve server`, `sieve worker`, `sieve run`): the
// database deleted, SIEVE_HOME turned read-only, the disk full. Each stops the run with one
// sentence naming the file or resource and a non-zero exit, never replaces a vanished database
// with an empty one, and leaves what was recorded before intact; after a full disk, a resume on a
// disk with room continues from the last good checkpoint.
//
// Tests run as root, which file modes do not stop: the read-only case makes the database files
// immutable (chattr +i, which stops root too, even through files already open), and the full-disk
// case puts SIEVE_HOME on a small tmpfs. Where either is not possible the case is skipped with the
// reason.
import assert from 'node:assert/strict';
import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import Database from 'better-sqlite3';

import type { ShowOutput } from '../../schemas/cli';
import { lastJson, serve, sieve, startServer, stopAll, tempHome, tinyRecipe, waitFor, writeRecipe } from '../cli/helpers';

const serverHome = tempHome('storage-server');
let remote: { TEMPORAL_ADDRESS: string };
let server: ChildProcess;

before(async () => {
  ({ child: server, remote } = await startServer(serverHome));
});
after(() => stopAll(server));

/** A tmpfs of `megabytes` at a fresh directory, or the reason there cannot be one. */
function tmpfs(label: string, megabytes: number): { dir: string } | { skip: string } {
  const dir = tempHome(label);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${megabytes}m,mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return { skip: `cannot mount a tmpfs here (${(r.stderr || r.error?.message || '').trim()})` };
  after(() => {
    spawnSync('umount', ['-l', dir]);
  });
  return { dir };
}

/** The dense stage's recorded step, read straight from the database file (read-only, no marker). */
function recordedStep(home: string): number {
  const file = path.join(home, 'sieve.db');
  if (!fs.existsSync(file)) return 0;
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    // The file exists a moment before sieve's migrations have made its tables.
    const migrated = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stages'").get();
    if (!migrated) return 0;
    return (db.prepare("SELECT step FROM stages WHERE stage_id = 'dense'").get() as { step: number } | undefined)?.step ?? 0;
  } finally {
    db.close();
  }
}

// Long enough (~10 s or more after step 20) for each fault to land mid-stage; a resume trains
// the rest, so every step past that margin is the suite's time.
const slowRecipe = (dir: string, name: string) => writeRecipe(dir, `${name}.yaml`, tinyRecipe({ name, slow: true, steps: 600, checkpointEvery: 20 }));

test('the database deleted mid-run stops the run, naming the file, and is never silently replaced', { timeout: 180_000 }, async () => {
  const home = tempHome('db-deleted');
  const worker = serve(home, ['worker'], remote);
  try {
    const runner = sieve(home, ['run', slowRecipe(home, 'deleted'), '--json'], remote);
    await waitFor('a checkpoint recorded', () => recordedStep(home) >= 20);
    fs.rmSync(path.join(home, 'sieve.db'));
    const r = await runner;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /the database .*sieve\.db was deleted while sieve had it open/);

    for (const command of [['history'], ['status'], ['show', 'x']]) {
      const c = await sieve(home, [...command, '--json']);
      assert.equal(c.code, 1, `${command[0]} fails`);
      assert.match(c.stderr, /sieve\.db is missing, but one was created there .*deleted or moved/);
      assert.equal(JSON.parse(c.stdout).error.code, 'database-lost');
    }
    assert.equal(fs.existsSync(path.join(home, 'sieve.db')), false, 'no fresh, empty database took its place');
  } finally {
    worker.kill('SIGTERM');
  }
});

test('the database made read-only mid-run (immutable, which stops root too) stops the run; what was recorded stays', { timeout: 180_000 }, async (t) => {
  const home = tempHome('db-read-only');
  const files = ['sieve.db', 'sieve.db-wal', 'sieve.db-shm'].map((f) => path.join(home, f));
  const worker = serve(home, ['worker'], remote);
  try {
    const runner = sieve(home, ['run', slowRecipe(home, 'readonly'), '--json'], remote);
    await waitFor('a checkpoint recorded', () => recordedStep(home) >= 20);
    const chattr = spawnSync('chattr', ['+i', ...files], { encoding: 'utf8' });
    if (chattr.status !== 0) {
      runner.then(() => undefined);
      return t.skip(`chattr +i is not available here (${(chattr.stderr || chattr.error?.message || '').trim()})`);
    }
    const stepBefore = recordedStep(home);
    const r = await runner;
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot use the database .*sieve\.db: (it is read-only|reading or writing it failed)/);
    spawnSync('chattr', ['-i', ...files]);
    const [run] = JSON.parse((await sieve(home, ['history', '--json'])).stdout).runs as Array<{ id: string }>;
    const shown = JSON.parse((await sieve(home, ['show', run.id, '--json'])).stdout) as ShowOutput;
    const dense = shown.stages.find((s) => s.id === 'dense')!;
    assert.ok(dense.step >= stepBefore, 'the checkpoints recorded before are still there');
    for (const a of dense.artifacts) assert.ok(fs.existsSync(a.path), `${a.path} is intact`);
  } finally {
    spawnSync('chattr', ['-i', ...files]);
    worker.kill('SIGTERM');
  }
});

test('a full disk fails the stage at once with the numbers; a resume with room continues from the last checkpoint', { timeout: 240_000 }, async (t) => {
  const mounted = tmpfs('disk-full', 48);
  if ('skip' in mounted) return t.skip(mounted.skip);
  const home = mounted.dir;
  const recipeDir = tempHome('full-recipe');
  const worker = serve(home, ['worker'], remote);
  try {
    // The database and the first checkpoints fit; the filler leaves room for a few more only.
    const runner = sieve(home, ['run', slowRecipe(recipeDir, 'full'), '--json', '--max-attempts', '5'], remote);
    await waitFor('a checkpoint recorded', () => recordedStep(home) >= 20);
    const { bavail, bsize } = fs.statfsSync(home);
    fs.writeFileSync(path.join(home, 'filler'), Buffer.alloc(Math.max(0, bavail * bsize - 4 * 1024 * 1024)));
    const r = await runner;
    assert.equal(r.code, 1, r.stderr);
    // Some room back for what the failing run's last writes used up: `history` records how a run
    // ended (below), and with the disk still full to the byte that write could fail too.
    const filler = path.join(home, 'filler');
    fs.truncateSync(filler, Math.max(0, fs.statSync(filler).size - 8 * 1024 * 1024));
    // With TEMPORAL_ADDRESS, `history` also records how a run ended if its workflow could not.
    const listed = await sieve(home, ['history', '--json'], remote);
    assert.equal(listed.code, 0, `history: ${listed.stderr}`);
    const history = JSON.parse(listed.stdout) as { runs: Array<{ id: string; status: string }> };
    const run = history.runs[0];
    assert.equal(run.status, 'failed', 'the run reached a final status');
    const failed = JSON.parse((await sieve(home, ['show', run.id, '--json'], remote)).stdout) as ShowOutput;
    const dense = failed.stages.find((s) => s.id === 'dense')!;
    assert.equal(dense.status, 'failed');
    assert.equal(dense.attempt, 1, 'not retried: a full disk stays full');
    assert.match(dense.error ?? '', /the disk is full writing .* \(ENOSPC\): [\d.]+ .*free of [\d.]+ MiB on its file system/);
    const lastGood = dense.step;
    assert.ok(lastGood >= 20);

    fs.rmSync(path.join(home, 'filler'));
    const resumed = await sieve(home, ['resume', run.id, '--json', '--detach'], remote);
    assert.equal(resumed.code, 0, resumed.stderr);
    const newId = lastJson<{ id: string }>(resumed.stdout).id;
    const after = await waitFor('the resumed run to finish', async () => {
      const s = JSON.parse((await sieve(home, ['show', newId, '--json'])).stdout) as ShowOutput;
      return s.status === 'completed' ? s : null;
    }, 180_000);
    assert.deepEqual(after.stages.map((s) => s.status), ['completed', 'completed']);
    const db = new Database(path.join(home, 'sieve.db'), { readonly: true });
    const resumedAt = (db.prepare("SELECT payload FROM events WHERE run_id = ? AND type = 'stage.resumed'").all(newId) as Array<{ payload: string }>).map((e) => JSON.parse(e.payload).step);
    db.close();
    assert.deepEqual(resumedAt, [lastGood], 'the resume continued from the last good checkpoint');
  } finally {
    worker.kill('SIGTERM');
  }
});
