// The journal: the append-only `events` table, each row chained to the previous event of its run
// by a hash (sha256 over the previous hash and the row's canonical JSON), so an edit or a deletion
// shows up when the chain is verified. Status changes are journaled by ./writes.ts in the same
// transaction as the change; everything else calls appendEvent.
import { and, asc, desc, eq, sql } from 'drizzle-orm';
import { canonicalJson } from '../../schemas/canonical';
import { events } from '../../schemas/tables';
import type { SieveDb } from './db';
import { sha256Hex } from './hash';

export type EventRow = typeof events.$inferSelect;

export interface EventInput {
  runId: string;
  stageId?: string | null;
  /** Dotted: `run.started`, `stage.cache-hit`, `stage.resumed`, … */
  type: string;
  payload?: Record<string, unknown>;
  /** When it happened, if not now (e.g. an event reported by a compute activity). */
  at?: Date;
}

/** Appends to the journal, chained to the run's previous event. Returns the new row. */
export function appendEvent(db: SieveDb, event: EventInput): EventRow {
  return db.transaction((tx) => insertEvent(tx, event), { behavior: 'immediate' });
}

/** A transaction of the sieve database (writes that journal inside their own transaction take one). */
export type Tx = Parameters<Parameters<SieveDb['transaction']>[0]>[0];

/** Appends one event inside the caller's transaction. */
export function insertEvent(tx: Tx, event: EventInput): EventRow {
  const at = event.at ?? new Date();
  const stageId = event.stageId ?? null;
  const payload = event.payload ?? {};
  const previous = tx
    .select({ hash: events.hash })
    .from(events)
    .where(eq(events.runId, event.runId))
    .orderBy(desc(events.id))
    .limit(1)
    .get();
  const hash = eventHash(previous?.hash ?? null, { runId: event.runId, stageId, type: event.type, payload, at: at.getTime() });
  return tx.insert(events).values({ runId: event.runId, stageId, type: event.type, payload, at, hash }).returning().get();
}

function eventHash(previous: string | null, body: Record<string, unknown>): string {
  return sha256Hex(`${previous ?? ''}\n${canonicalJson(body)}`);
}

/** Re-computes the run's event chain; reports the first event whose hash does not follow (edited, or one before it deleted). */
export function verifyEventChain(db: SieveDb, runId: string): { ok: true; events: number } | { ok: false; brokenAt: number } {
  const rows = listEvents(db, runId);
  let previous: string | null = null;
  for (const row of rows) {
    const expected = eventHash(previous, { runId, stageId: row.stageId, type: row.type, payload: row.payload, at: row.at.getTime() });
    if (expected !== row.hash) return { ok: false, brokenAt: row.id };
    previous = row.hash;
  }
  return { ok: true, events: rows.length };
}

/** The run's journal in order, optionally from a given event id on (for following a run). */
export function listEvents(db: SieveDb, runId: string, afterId = 0): EventRow[] {
  return db
    .select()
    .from(events)
    .where(and(eq(events.runId, runId), sql`${events.id} > ${afterId}`))
    .orderBy(asc(events.id))
    .all();
}
