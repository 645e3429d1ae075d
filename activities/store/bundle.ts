// Provenance bundles: one file that carries a run's recorded history to another SIEVE_HOME, so
// `compare` and `verify` work across machines (`sieve show <run> --bundle <file>`, `sieve import
// <file>`). A bundle holds the run and every run it depends on (the runs it resumes, those whose
// cached or reused stages it took, those that made its inputs), each with its rows as the database
// has them: the resolved recipe, code version and environments, stages with their cache basis
// (the data hashes among it), metrics, artifact records and links, and the journal with its hash
// chain. Artifact files travel only when asked; they are then checked against their names.
//
// The file is gzip-compressed JSON (format `sieve-bundle`, version 1). Importing is all or
// nothing: the rows go in one transaction, each imported run is then verified (./verify.ts) and a
// broken one rolls everything back, naming it. A run already present with the same journal is
// left as it is; one present with another journal is refused.
import { gunzipSync, gzipSync } from 'node:zlib';

import { and, asc, eq, inArray } from 'drizzle-orm';
import { z } from 'zod';
import { artifacts, events, metrics, runs, stageArtifacts, stages } from '../../schemas/tables';
import type { ArtifactStore } from './artifacts';
import type { SieveDb } from './db';
import { sha256Hex } from './hash';
import { insertEvent } from './journal';
import { verifyRun } from './verify';

export const BUNDLE_FORMAT = 'sieve-bundle';
export const BUNDLE_VERSION = 1;

type RunRow = typeof runs.$inferSelect;
type StageRow = typeof stages.$inferSelect;
type MetricRow = typeof metrics.$inferSelect;
type ArtifactRow = typeof artifacts.$inferSelect;
type LinkRow = typeof stageArtifacts.$inferSelect;
type EventRow = typeof events.$inferSelect;

// Rows as JSON: timestamps as epoch milliseconds; ids of metrics and events are not carried (the
// importing database numbers its own; a run's chain does not depend on them).
const ms = z.number().int().nullable();
const Bundle = z.strictObject({
  format: z.literal(BUNDLE_FORMAT),
  version: z.literal(BUNDLE_VERSION),
  run: z.string(),
  created: z.string(),
  runs: z.array(z.looseObject({ id: z.string(), createdAt: z.number() })),
  stages: z.array(z.looseObject({ runId: z.string(), stageId: z.string() })),
  metrics: z.array(z.looseObject({ runId: z.string(), stageId: z.string(), name: z.string(), recordedAt: z.number() })),
  artifacts: z.array(z.looseObject({ sha256: z.string(), createdAt: z.number() })),
  links: z.array(z.looseObject({ runId: z.string(), sha256: z.string(), linkedAt: z.number() })),
  events: z.array(z.looseObject({ runId: z.string(), at: z.number(), hash: z.string() })),
  /** sha256 → base64, with --with-artifacts. */
  files: z.record(z.string(), z.string()).nullable(),
});
type Bundle = z.infer<typeof Bundle>;

/** The run and every run it depends on, oldest first. */
function closure(db: SieveDb, runId: string): RunRow[] {
  const found = new Map<string, RunRow>();
  const queue = [runId];
  while (queue.length > 0) {
    const id = queue.pop()!;
    if (found.has(id)) continue;
    const run = db.select().from(runs).where(eq(runs.id, id)).get();
    if (!run) throw new Error(`no run ${id} in the database`);
    found.set(id, run);
    if (run.parentRunId) queue.push(run.parentRunId);
    for (const s of db.select({ from: stages.reusedFromRunId }).from(stages).where(eq(stages.runId, id)).all()) if (s.from) queue.push(s.from);
    const inputs = db.select({ sha256: stageArtifacts.sha256 }).from(stageArtifacts).where(and(eq(stageArtifacts.runId, id), eq(stageArtifacts.role, 'input'))).all();
    for (const { sha256 } of inputs) {
      const made = db.select({ runId: artifacts.producedByRunId }).from(artifacts).where(eq(artifacts.sha256, sha256)).get();
      if (made?.runId) queue.push(made.runId);
    }
  }
  return [...found.values()].sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.id.localeCompare(b.id));
}

const time = (d: Date | null) => (d === null ? null : d.getTime());

/** The bundle of `runId` as bytes (gzip-compressed JSON). */
export async function writeBundle(db: SieveDb, store: ArtifactStore, runId: string, options: { withArtifacts: boolean }): Promise<Buffer> {
  const included = closure(db, runId);
  const ids = included.map((r) => r.id);
  const stageRows = db.select().from(stages).where(inArray(stages.runId, ids)).all();
  const metricRows = db.select().from(metrics).where(inArray(metrics.runId, ids)).orderBy(asc(metrics.id)).all();
  const linkRows = db.select().from(stageArtifacts).where(inArray(stageArtifacts.runId, ids)).all();
  const shas = [...new Set(linkRows.map((l) => l.sha256))];
  const artifactRows = shas.length ? db.select().from(artifacts).where(inArray(artifacts.sha256, shas)).all() : [];
  const eventRows = db.select().from(events).where(inArray(events.runId, ids)).orderBy(asc(events.id)).all();
  let files: Record<string, string> | null = null;
  if (options.withArtifacts) {
    files = {};
    for (const sha of shas) files[sha] = (await store.read(sha)).toString('base64');
  }
  const bundle: Bundle = {
    format: BUNDLE_FORMAT,
    version: BUNDLE_VERSION,
    run: runId,
    created: new Date().toISOString(),
    runs: included.map((r) => ({ ...r, createdAt: r.createdAt.getTime(), startedAt: time(r.startedAt), finishedAt: time(r.finishedAt) })),
    stages: stageRows.map((s) => ({ ...s, startedAt: time(s.startedAt), finishedAt: time(s.finishedAt) })),
    metrics: metricRows.map(({ id: _id, ...m }) => ({ ...m, recordedAt: m.recordedAt.getTime() })),
    artifacts: artifactRows.map((a) => ({ ...a, createdAt: a.createdAt.getTime() })),
    links: linkRows.map((l) => ({ ...l, linkedAt: l.linkedAt.getTime() })),
    events: eventRows.map(({ id: _id, ...e }) => ({ ...e, at: e.at.getTime() })),
    files,
  };
  return gzipSync(Buffer.from(JSON.stringify(bundle)));
}

export interface ImportResult {
  run: string;
  /** Runs added, oldest first. */
  imported: string[];
  /** Runs that were already here with the same journal. */
  present: string[];
  /** Artifact files stored. */
  files: number;
}

/** Loads a bundle into the database (and its files into the store): see the file header. */
export async function importBundle(db: SieveDb, store: ArtifactStore, bytes: Buffer, source: string): Promise<ImportResult> {
  let bundle: Bundle;
  try {
    bundle = Bundle.parse(JSON.parse(gunzipSync(bytes).toString('utf8')));
  } catch (error) {
    throw new Error(`${source} is not a sieve bundle (version ${BUNDLE_VERSION}): ${error instanceof z.ZodError ? z.prettifyError(error) : (error as Error).message}`);
  }
  // files first, each checked against its name: a damaged one stops the import before any row
  let stored = 0;
  for (const [sha, base64] of Object.entries(bundle.files ?? {})) {
    const data = Buffer.from(base64, 'base64');
    if (sha256Hex(data) !== sha) throw new Error(`${source}: the file carried for artifact ${sha} does not hash to its name: the bundle is damaged`);
    await store.put(data);
    stored++;
  }
  const date = (v: unknown) => (v === null || v === undefined ? null : new Date(v as number));
  const present: string[] = [];
  const imported: string[] = [];
  db.transaction(
    (tx) => {
      for (const run of bundle.runs) {
        const theirs = bundle.events.filter((e) => e.runId === run.id).map((e) => e.hash);
        const existing = tx.select({ id: runs.id }).from(runs).where(eq(runs.id, run.id)).get();
        if (existing) {
          const ours = tx.select({ hash: events.hash }).from(events).where(eq(events.runId, run.id)).orderBy(asc(events.id)).all().map((e) => e.hash);
          if (ours.length < theirs.length || theirs.some((h, i) => ours[i] !== h)) {
            throw new Error(`run ${run.id} is already in this SIEVE_HOME with another history: the bundle's journal is not a prefix of it`);
          }
          present.push(run.id);
          continue;
        }
        const r = run as unknown as RunRow & { createdAt: number; startedAt: number | null; finishedAt: number | null };
        tx.insert(runs).values({ ...r, createdAt: new Date(r.createdAt), startedAt: date(r.startedAt), finishedAt: date(r.finishedAt) }).run();
        imported.push(run.id);
      }
      const fresh = new Set(imported);
      for (const s of bundle.stages as unknown as (StageRow & { startedAt: number | null; finishedAt: number | null })[]) {
        if (fresh.has(s.runId)) tx.insert(stages).values({ ...s, startedAt: date(s.startedAt), finishedAt: date(s.finishedAt) }).run();
      }
      for (const m of bundle.metrics as unknown as (Omit<MetricRow, 'id'> & { recordedAt: number })[]) {
        if (fresh.has(m.runId)) tx.insert(metrics).values({ ...m, recordedAt: new Date(m.recordedAt) }).run();
      }
      for (const a of bundle.artifacts as unknown as (ArtifactRow & { createdAt: number })[]) {
        tx.insert(artifacts).values({ ...a, createdAt: new Date(a.createdAt) }).onConflictDoNothing().run();
      }
      for (const l of bundle.links as unknown as (LinkRow & { linkedAt: number })[]) {
        if (fresh.has(l.runId)) tx.insert(stageArtifacts).values({ ...l, linkedAt: new Date(l.linkedAt) }).run();
      }
      for (const e of bundle.events as unknown as (Omit<EventRow, 'id'> & { at: number })[]) {
        if (fresh.has(e.runId)) tx.insert(events).values({ ...e, at: new Date(e.at) }).run();
      }
      // Each imported run says where it came from, chained like any event.
      for (const id of imported) insertEvent(tx, { runId: id, type: 'run.imported', payload: { bundle: sha256Hex(bytes), run: bundle.run, created: bundle.created } });
    },
    { behavior: 'immediate' },
  );
  // verified as imported; a broken run takes the whole import back out
  const broken: string[] = [];
  for (const id of imported) {
    const verdict = await verifyRun(db, store, id);
    if (verdict.problem !== null) broken.push(`run ${id}: ${verdict.problem}`);
  }
  if (broken.length > 0) {
    removeRuns(db, imported);
    throw new Error(`${source}: the bundle's history does not verify, so nothing was imported: ${broken[0]}`);
  }
  return { run: bundle.run, imported, present, files: stored };
}

/** Deletes runs just imported (their rows only; artifact files stay for gc). */
function removeRuns(db: SieveDb, ids: string[]): void {
  if (ids.length === 0) return;
  db.transaction(
    (tx) => {
      tx.delete(events).where(inArray(events.runId, ids)).run();
      tx.delete(metrics).where(inArray(metrics.runId, ids)).run();
      tx.delete(stageArtifacts).where(inArray(stageArtifacts.runId, ids)).run();
      tx.delete(artifacts).where(inArray(artifacts.producedByRunId, ids)).run();
      // newest first: a stage may name a stage of an earlier imported run as its source
      for (const id of [...ids].reverse()) tx.delete(stages).where(eq(stages.runId, id)).run();
      for (const id of [...ids].reverse()) tx.delete(runs).where(eq(runs.id, id)).run();
    },
    { behavior: 'immediate' },
  );
}
