// The SQLite database that holds sieve's history: opens (or creates) SIEVE_HOME/sieve.db,
// applies the migrations in migrations/, and hands back a typed drizzle database.
//
// Several processes may open the same file at once (two `sieve run`s, a control worker
// and a `sieve show`): WAL lets readers run beside the one writer, busy_timeout makes a
// writer wait for the lock instead of failing, and the records layer takes its write
// transactions IMMEDIATE so that a reader never has to upgrade to a writer mid-transaction
// (which SQLite answers with SQLITE_BUSY at once, without waiting). better-sqlite3 stays
// private to this module: callers see drizzle's driver-independent types only.
import Database from 'better-sqlite3';
import { drizzle } from 'drizzle-orm/better-sqlite3';
import { migrate } from 'drizzle-orm/better-sqlite3/migrator';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import type { BaseSQLiteDatabase } from 'drizzle-orm/sqlite-core';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { artifacts, events, metrics, runs, stageArtifacts, stages } from '../../schemas/tables';
import { sieveHome } from './artifacts';

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
  close(): void;
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
  if (file !== ':memory:') mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
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
    return { db, file: file === ':memory:' ? file : path.resolve(file), close: () => client.close() };
  } catch (error) {
    client.close();
    throw error;
  }
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
