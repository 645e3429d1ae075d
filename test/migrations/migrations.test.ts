// migrations/: the generated SQL applies cleanly to a fresh file and to :memory:, is applied
// once, and matches schemas/tables.ts (drizzle-kit finds nothing left to generate).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';

import { sql } from 'drizzle-orm';

import { MIGRATIONS_FOLDER, openDb } from '../../activities/store/db';

const ROOT = path.resolve(__dirname, '../..');
const scratch = mkdtempSync(path.join(os.tmpdir(), 'sieve-migrations-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const journal = JSON.parse(readFileSync(path.join(MIGRATIONS_FOLDER, 'meta', '_journal.json'), 'utf8')) as {
  dialect: string;
  entries: Array<{ idx: number; tag: string; when: number }>;
};
const TABLES = ['artifacts', 'events', 'metrics', 'runs', 'stage_artifacts', 'stages'];

function tablesOf(db: ReturnType<typeof openDb>['db']): string[] {
  return db
    .all<{ name: string }>(sql`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '__drizzle%' ORDER BY name`)
    .map((r) => r.name);
}

describe('migrations', () => {
  it('every journal entry has its SQL file, named, in order', () => {
    assert.equal(journal.dialect, 'sqlite');
    const files = readdirSync(MIGRATIONS_FOLDER).filter((f) => f.endsWith('.sql')).sort();
    assert.deepEqual(files, journal.entries.map((e) => `${e.tag}.sql`));
    journal.entries.forEach((entry, i) => {
      assert.equal(entry.idx, i);
      assert.match(entry.tag, /^\d{4}_[a-z0-9-]+$/);
      if (i > 0) assert.ok(entry.when > journal.entries[i - 1].when, 'timestamps increase');
    });
  });

  it('apply to :memory:', () => {
    const { db, close } = openDb({ file: ':memory:' });
    try {
      assert.deepEqual(tablesOf(db), TABLES);
      assert.deepEqual(db.all(sql`PRAGMA foreign_key_check`), []);
    } finally {
      close();
    }
  });

  it('apply to a fresh file once, and not again on reopening', () => {
    const file = path.join(scratch, 'fresh.db');
    for (let open = 0; open < 2; open++) {
      const { db, close } = openDb({ file });
      try {
        assert.deepEqual(tablesOf(db), TABLES);
        const applied = db.all<{ hash: string }>(sql`SELECT hash FROM __drizzle_migrations`);
        assert.equal(applied.length, journal.entries.length);
      } finally {
        close();
      }
    }
  });

  it('match schemas/tables.ts: drizzle-kit has nothing to generate', () => {
    const out = path.join(scratch, 'migrations-copy');
    cpSync(MIGRATIONS_FOLDER, out, { recursive: true });
    const log = execFileSync(
      process.execPath,
      [
        path.join(ROOT, 'node_modules', 'drizzle-kit', 'bin.cjs'),
        ...['generate', '--dialect', 'sqlite', '--schema', './schemas/tables.ts'],
        // drizzle-kit mangles an absolute --out (it prefixes "./"), so pass it relative to the root.
        ...['--out', path.relative(ROOT, out)],
      ],
      { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    assert.match(log, /No schema changes/, log);
    assert.deepEqual(readdirSync(out).sort(), readdirSync(MIGRATIONS_FOLDER).sort());
  });
});
