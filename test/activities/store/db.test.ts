// The database handle: pragmas, and two processes creating and writing one database at the
// same time (two `sieve run`s on one SIEVE_HOME) without errors or lost writes.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';

import { sql } from 'drizzle-orm';

import { openDb } from '../../../activities/store/db';
import { verifyEventChain } from '../../../activities/store/journal';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'sieve-db-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function writer(file: string, tag: string, runs: number, startAt: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'concurrent-writer.ts'), file, tag, String(runs), String(startAt)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer ${tag} exited ${code}:\n${stderr}`))));
  });
}

describe('openDb', () => {
  it('creates SIEVE_HOME/sieve.db in WAL mode with foreign keys and a busy timeout', () => {
    const home = path.join(scratch, 'fresh-home');
    const { db, file, close } = openDb({ home });
    try {
      assert.equal(file, path.join(home, 'sieve.db'));
      assert.deepEqual(db.all(sql`PRAGMA journal_mode`), [{ journal_mode: 'wal' }]);
      assert.deepEqual(db.all(sql`PRAGMA foreign_keys`), [{ foreign_keys: 1 }]);
      assert.deepEqual(db.all(sql`PRAGMA synchronous`), [{ synchronous: 1 }]); // NORMAL
      const [{ timeout }] = db.all<{ timeout: number }>(sql`PRAGMA busy_timeout`);
      assert.ok(timeout >= 5000);
    } finally {
      close();
    }
  });

  it('two processes create and write one database at once without losing a row', async () => {
    const file = path.join(scratch, 'shared', 'sieve.db');
    const runs = 15;
    // Both open a database that does not exist yet, so they also race to migrate it; then
    // both start writing at the same moment (a start line, not a timing assertion).
    const startAt = Date.now() + 2000;
    await Promise.all([writer(file, 'left', runs, startAt), writer(file, 'right', runs, startAt)]);

    const { db, close } = openDb({ file });
    try {
      const count = (table: string) => db.get<{ n: number }>(sql.raw(`SELECT count(*) AS n FROM ${table}`))!.n;
      assert.equal(count('runs'), 2 * runs);
      assert.equal(count('stages'), 2 * runs);
      assert.equal(count('metrics'), 2 * runs * 20 * 2);
      assert.equal(count('artifacts'), 1);
      assert.equal(count('stage_artifacts'), 2 * runs);
      assert.equal(count('__drizzle_migrations'), 1, 'the migrations were applied once');
      const statuses = db.all<{ status: string; n: number }>(sql`SELECT status, count(*) AS n FROM runs GROUP BY status`);
      assert.deepEqual(statuses, [{ status: 'completed', n: 2 * runs }]);
      for (const { id } of db.all<{ id: string }>(sql`SELECT id FROM runs`)) {
        assert.deepEqual(verifyEventChain(db, id), { ok: true, events: 6 }, `journal of ${id}`);
      }
      assert.deepEqual(db.all(sql`PRAGMA integrity_check`), [{ integrity_check: 'ok' }]);
    } finally {
      close();
    }
  });
});
