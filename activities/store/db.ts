// The SQLite database that holds sieve's history: opens (or creates) SIEVE_HOME/sieve.db,
// applies the migrations in migrations/, and hands back a typed drizzle database.
//
// Several processes may open the same file at once (two `sieve run`s, a control worker
// and a `sieve show`): WAL lets readers run beside the one writer, busy_timeout makes a
// writer wait for the lock instead of failing, and the records layer takes its write
// transactions IMMEDIATE so that a reader never has to upgrade to a writer mid-transaction
// (which SQLite answers with SQLITE_BUSY at once, without waiting). better-sqlite3 stays
// private to this module: callers see drizzle's driver-independent types only.
//
// The history must never be lost quietly. Creating the database also writes a marker beside
// it (`sieve.db.marker`); a database that is missing while its marker exists was deleted or
// moved, and is never silently replaced by a fresh, empty one. A handle can check that the file
// it has open is still the one at its path (`checkFile`), because a deleted file stays writable
// through an open handle and everything written after the deletion would vanish. SQLite's
// failures that no retry can fix (read-only, full or corrupt file) are named with the file.
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import type { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { artifacts, events, metrics, runs, stageArtifacts, stages } from '../../schemas/tables';
import { ERROR_TYPES } from '../../workflows/contract';
import { ensurePrivateDir, sieveHome } from './artifacts';

/** Resolved from this file, not the working directory, so any cwd finds the migrations. */
export const MIGRATIONS_FOLDER = path.resolve(__dirname, '../../migrations');

/** How long a writer waits for another process's transaction before giving up. */
const BUSY_TIMEOUT_MS = 10_000;

const schema = { runs, stages, metrics, artifacts, stageArtifacts, events };

/** A sieve database handle: drizzle's query builder over the sieve tables, whatever the driver. */
export type SieveDb = BaseSQLiteDatabase<'sync', unknown, typeof schema>;

export interface SieveDatabase {
  readonly db: SieveDb;
  /** The database file's absolute path, or `:memory:`. */
  readonly file: string;
  /** Throws DatabaseLostError when the file at `file` is no longer the one this handle has open. */
  checkFile(): void;
  close(): void;
}

/** The database file vanished, or another file took its place: what is written through this handle is lost. */
export class DatabaseLostError extends Error {
  // The name is the failure type Temporal sees; the workflow does not retry it.
  override readonly name = ERROR_TYPES.databaseLost;
}

/** The database cannot be written (read-only, full, corrupt, unreadable): the same on every retry. */
export class DatabaseUnusableError extends Error {
  override readonly name = ERROR_TYPES.databaseUnusable;
}

export interface OpenDbOptions {
  /** SIEVE_HOME; the database is `<home>/sieve.db`. Default: `sieveHome()`. */
  home?: string;
  /** A database file (or `:memory:`) instead of `<home>/sieve.db`, for tests and tools. */
  file?: string;
}

/** Opens the database, creating it and its directory if needed, and brings its schema up to date. */
export function openDb(options: OpenDbOptions = {}): SieveDatabase {
  const file = options.file ?? path.join(options.home ?? sieveHome(), 'sieve.db');
  if (file === ':memory:') return connect(file);
  const absolute = path.resolve(file);
  const marker = `${absolute}.marker`;
  if (!existsSync(absolute) && existsSync(marker)) {
    throw new DatabaseLostError(
      `the database ${absolute} is missing, but one was created there (${readFileSync(marker, 'utf8').trim()}): it was deleted or moved, ` +
        `and sieve will not replace it with an empty one. Restore it, or delete ${marker} to start an empty history.`,
    );
  }
  ensurePrivateDir(path.dirname(absolute));
  try {
    const handle = connect(absolute);
    if (!existsSync(marker)) writeFileSync(marker, `created ${new Date().toISOString()} by pid ${process.pid}\n`, { mode: 0o600 });
    return handle;
  } catch (error) {
    throw explainDatabaseFailure(absolute, error);
  }
}

function connect(file: string): SieveDatabase {
  const client = new Database(file);
  try {
    // busy_timeout first: switching to WAL itself needs a lock another process may hold.
    client.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    whileBusy(() => client.pragma('journal_mode = WAL'));
    // NORMAL is durable across process crashes in WAL mode; only a power cut can lose the last commits.
    client.pragma('synchronous = NORMAL');
    client.pragma('foreign_keys = ON');
    const db = drizzle(client, { schema });
    applyMigrations(db, client);
    const opened = file === ':memory:' ? null : identity(file);
    const checkFile = () => {
      if (!opened) return;
      const now = identity(file);
      if (now?.dev === opened.dev && now.ino === opened.ino) return;
      throw new DatabaseLostError(
        `the database ${file} was ${now ? 'replaced by another file' : 'deleted'} while sieve had it open; ` +
          'what would be recorded now could not be kept, so sieve stops here instead of losing it quietly.',
      );
    };
    return { db, file, checkFile, close: () => client.close() };
  } catch (error) {
    client.close();
    throw error;
  }
}

/** The file's device and inode, or null when it does not exist. */
function identity(file: string): { dev: number; ino: number } | null {
  try {
    const { dev, ino } = statSync(file);
    return { dev, ino };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** What each SQLite failure that no retry can fix means, by the primary result code's name. */
const UNUSABLE: Record<string, string> = {
  SQLITE_READONLY: 'it is read-only (its file, its directory or its file system)',
  SQLITE_FULL: 'the disk is full',
  SQLITE_IOERR: 'reading or writing it failed (a disk I/O error: the file may have been removed, or the disk failed)',
  SQLITE_CORRUPT: 'it is corrupt',
  SQLITE_NOTADB: 'it is not a SQLite database',
  SQLITE_CANTOPEN: 'it cannot be opened',
  SQLITE_PERM: 'access to it is denied',
};

/**
 * A DatabaseUnusableError naming the file and what is wrong, for a SQLite failure that will not
 * go away on a retry; any other error is returned as it is.
 */
export function explainDatabaseFailure(file: string, error: unknown): unknown {
  const code = (error as { code?: unknown }).code;
  if (typeof code !== 'string') return error;
  const primary = Object.keys(UNUSABLE).find((name) => code === name || code.startsWith(`${name}_`));
  if (!primary) return error;
  return new DatabaseUnusableError(`cannot use the database ${file}: ${UNUSABLE[primary]} (${code}: ${(error as Error).message})`);
}

/**
 * Runs `fn` again while SQLite answers SQLITE_BUSY, for up to the busy timeout. Changing the
 * journal mode needs an exclusive lock, and SQLite may refuse it at once, without calling the busy
 * handler, while another process is opening the same new database.
 */
function whileBusy<T>(fn: () => T): T {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      return fn();
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw error;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

/**
 * Runs drizzle's migrator unless the database is already current. Two processes opening a
 * new database together can both find it out of date; the loser's migration then fails
 * (its tables exist by the time it gets the write lock), which is fine exactly when the
 * winner has brought the database up to date, so that is checked before rethrowing.
 */
function applyMigrations(db: Parameters<typeof migrate>[0], client: Database.Database): void {
  const latest = Math.max(...readMigrationFiles({ migrationsFolder: MIGRATIONS_FOLDER }).map((m) => m.folderMillis));
  const current = (): boolean => {
    const table = client.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '__drizzle_migrations'").get();
    if (!table) return false;
    const row = client.prepare('SELECT max(created_at) AS at FROM __drizzle_migrations').get() as { at: number | null };
    return row.at !== null && Number(row.at) >= latest;
  };
  if (current()) return;
  try {
    migrate(db, { migrationsFolder: MIGRATIONS_FOLDER });
  } catch (error) {
    if (!current()) throw error;
  }
}
