// `sieve verify`: checks that the recorded history is what was recorded. Per run, in this order,
// the first broken item is reported:
//   1. the run's event chain (./journal.ts): an edited event, or one deleted before the last;
//   2. its creation record: the recipe and code version it names are the run's;
//   3. its link to the run created before it (`run.created` names that run's creation event):
//      a deleted or rewritten earlier run breaks the next one's link;
//   4. every stage's seal (./seal.ts): its metrics and produced artifacts are those recorded when
//      it completed;
//   5. every artifact the run references hashes to its name;
//   6. lineage: every input a stage consumed was made by a recorded stage.
// A run imported from a bundle is held to the same checks, except that the run created before it
// on its first machine, and artifact files its bundle did not carry, need not be here.
// Deleting the newest events or runs, or rewriting everything consistently, leaves nothing inside
// the database to contradict it: that is what the head is for. `historyHead` digests the whole
// journal up to its last event; kept elsewhere, it is checked later by `checkAgainstHead`.
import { and, asc, eq, lte, max } from 'drizzle-orm';
import { artifacts, events, runs, stageArtifacts, stages } from '../../schemas/tables';
import { ArtifactCorruptError, ArtifactMissingError, type ArtifactStore } from './artifacts';
import type { SieveDb } from './db';
import { recipeHash, sha256Hex } from './hash';
import { listEvents, verifyEventChain } from './journal';
import { metricsDigest, type StageSeal } from './seal';

export interface RunVerdict {
  runId: string;
  /** null when every check passed; else the first broken item, in words. */
  problem: string | null;
  /** Artifacts: re-hashed. Absent: files of an imported run that its bundle did not carry (not checked). */
  checked: { events: number; stages: number; artifacts: number; absent: number };
}

/** The checks of the file header on one run. */
export async function verifyRun(db: SieveDb, store: ArtifactStore, runId: string): Promise<RunVerdict> {
  const checked = { events: 0, stages: 0, artifacts: 0, absent: 0 };
  const verdict = (problem: string | null): RunVerdict => ({ runId, problem, checked });
  const run = db.select().from(runs).where(eq(runs.id, runId)).get();
  if (!run) return verdict(`no run ${runId} in the database`);

  const chain = verifyEventChain(db, runId);
  if (!chain.ok) return verdict(`event #${chain.brokenAt}: its hash does not follow the run's chain (it was edited, or an event before it was deleted)`);
  checked.events = chain.events;
  const journal = listEvents(db, runId);
  const created = journal[0];
  if (!created || created.type !== 'run.created') return verdict(`the journal does not start with run.created: its first events were deleted`);

  // A run imported from a bundle (./bundle.ts): the runs before it on its first machine need not
  // be here, nor the artifact files the bundle did not carry.
  const imported = journal.some((e) => e.type === 'run.imported');
  const payload = created.payload as { recipeHash?: string; codeVersion?: string; previous?: { runId: string; hash: string } | null };
  if (payload.recipeHash !== recipeHash(run.recipe)) return verdict(`the recipe in the runs table is not the one recorded when the run was created (hash ${payload.recipeHash})`);
  if (payload.codeVersion !== undefined && payload.codeVersion !== run.codeVersion) {
    return verdict(`the code version in the runs table (${run.codeVersion}) is not the one recorded when the run was created (${payload.codeVersion})`);
  }
  if (payload.previous) {
    const { runId: before, hash } = payload.previous;
    const earlier = db.select({ hash: events.hash }).from(events).where(and(eq(events.runId, before), eq(events.type, 'run.created'))).get();
    if (!earlier && !imported) return verdict(`run ${before}, created just before this one, is gone from the database: it was deleted`);
    if (earlier && earlier.hash !== hash) return verdict(`run ${before}, created just before this one, no longer has the creation record this run was linked to: it was rewritten`);
  }

  for (const event of journal) {
    const seal = (event.payload as { seal?: StageSeal }).seal;
    if (!seal || event.stageId === null) continue;
    checked.stages++;
    const now = metricsDigest(db, runId, event.stageId);
    if (now.sha256 !== seal.metrics.sha256) {
      return verdict(`stage ${event.stageId}: its metrics are not those sealed when it ${event.type.slice('stage.'.length)} (${seal.metrics.count} rows then, ${now.count} now; a value was edited, added or deleted)`);
    }
    const links = db
      .select({ role: stageArtifacts.role, sha256: stageArtifacts.sha256 })
      .from(stageArtifacts)
      .where(and(eq(stageArtifacts.runId, runId), eq(stageArtifacts.stageId, event.stageId)))
      .all();
    for (const a of seal.artifacts) {
      if (!links.some((l) => l.role === a.role && l.sha256 === a.sha256)) return verdict(`stage ${event.stageId}: its ${a.role} artifact ${a.sha256} is no longer linked to it`);
    }
  }

  const referenced = db.select().from(stageArtifacts).where(eq(stageArtifacts.runId, runId)).orderBy(asc(stageArtifacts.stageId), asc(stageArtifacts.role)).all();
  for (const link of referenced) {
    if (link.role === 'input') {
      const made = db.select({ runId: artifacts.producedByRunId, stageId: artifacts.producedByStageId }).from(artifacts).where(eq(artifacts.sha256, link.sha256)).get();
      const producer = made?.runId && made.stageId ? db.select({ id: stages.stageId }).from(stages).where(and(eq(stages.runId, made.runId), eq(stages.stageId, made.stageId))).get() : undefined;
      if (!producer) return verdict(`stage ${link.stageId}: its input ${link.sha256} was made by no recorded stage`);
    }
    try {
      await store.verify(link.sha256);
      checked.artifacts++;
    } catch (error) {
      if (error instanceof ArtifactMissingError && imported) checked.absent++;
      else if (error instanceof ArtifactMissingError) return verdict(`artifact ${link.sha256} (${link.role} of stage ${link.stageId}) is missing from the store`);
      else if (error instanceof ArtifactCorruptError) return verdict(`artifact ${link.sha256} (${link.role} of stage ${link.stageId}): its bytes no longer hash to its name`);
      else throw error;
    }
  }
  return verdict(null);
}

/** Every run, oldest first. */
export function allRunIds(db: SieveDb): string[] {
  return db.select({ id: runs.id }).from(runs).orderBy(asc(runs.createdAt), asc(runs.id)).all().map((r) => r.id);
}

/**
 * The head of the whole journal: `<last event id>:<sha256 over every event's id and hash up to it>`.
 * Kept outside SIEVE_HOME (in git, in a paper), it pins everything recorded so far.
 */
export function historyHead(db: SieveDb): string {
  const last = db.select({ id: max(events.id) }).from(events).get()?.id ?? 0;
  return `${last}:${journalDigest(db, last)}`;
}

/** Whether the journal up to the head's last event is still the one the head was taken from; null when it is, else why not. */
export function checkAgainstHead(db: SieveDb, head: string): string | null {
  const match = /^(\d+):([0-9a-f]{64})$/.exec(head);
  if (!match) throw new Error(`"${head}" is not a head printed by \`sieve verify --head\` (<event id>:<64 hex digits>)`);
  const upTo = Number(match[1]);
  const last = db.select({ id: max(events.id) }).from(events).get()?.id ?? 0;
  if (last < upTo) return `the journal ends at event #${last}, before the head's event #${upTo}: events recorded before the head was taken were deleted`;
  if (journalDigest(db, upTo) !== match[2]) return `the journal up to event #${upTo} is not the one the head was taken from: something recorded before it was rewritten or deleted`;
  return null;
}

function journalDigest(db: SieveDb, upTo: number): string {
  const rows = db.select({ id: events.id, hash: events.hash }).from(events).where(lte(events.id, upTo)).orderBy(asc(events.id)).all();
  return sha256Hex(rows.map((r) => `${r.id}:${r.hash}`).join('\n'));
}
