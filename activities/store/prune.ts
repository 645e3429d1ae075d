// Pruning a stage's mid-stage checkpoints, decided from SQLite on the control side. A checkpoint
// is content-addressed, so the same file may be linked by several stages and runs (a stage
// recomputed with identical bits, a resumed run that starts from its parent's checkpoints):
// pruning removes this stage's links, and a file is deleted only once no link to it remains
// anywhere. Outputs (`model`, `history`, `report`), inputs and history segments are never pruned.
import { and, desc, eq, inArray, sql } from 'drizzle-orm';
import { unlink } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_KEEP_CHECKPOINTS } from '../../schemas/stages/training';
import { artifacts, stageArtifacts } from '../../schemas/tables';
import { artifactRelativePath } from './artifacts';
import type { SieveDb } from './db';
import { insertEvent, type Tx } from './journal';

/** The link role of a mid-stage checkpoint, and of the history segment stored beside it. */
export const CHECKPOINT_ROLE = 'checkpoint';
export const HISTORY_SEGMENT_ROLE = 'history-segment';

/** How many mid-stage checkpoints a stage keeps (null: all), from its recorded configuration. */
export function keepCheckpointsOf(config: unknown): number | null {
  const keep = (config as { keepCheckpoints?: number | null }).keepCheckpoints;
  return keep === undefined ? DEFAULT_KEEP_CHECKPOINTS : keep;
}

export interface PrunedLink {
  step: number | null;
  sha256: string;
}

export interface PruneResult {
  /** The stage's checkpoint links removed. */
  pruned: PrunedLink[];
  /** Artifacts no link references any more: their rows are gone, their files are the caller's to delete. */
  freed: Array<{ sha256: string; bytes: number }>;
}

/**
 * Removes the links of (run, stage) to its checkpoints beyond the newest `keep` by step (null
 * keeps all), never the one named `alsoKeep` (a stage that fell back from a damaged checkpoint
 * writes older steps again, and what it just wrote is what it continues from). Journals
 * `stage.checkpoints-pruned` in the same IMMEDIATE transaction.
 */
export function pruneCheckpoints(db: SieveDb, input: { runId: string; stageId: string; keep: number | null; alsoKeep?: string | null }): PruneResult {
  const { runId, stageId, keep } = input;
  if (keep === null) return { pruned: [], freed: [] };
  return db.transaction(
    (tx) => {
      const links = tx
        .select({ step: stageArtifacts.step, sha256: stageArtifacts.sha256 })
        .from(stageArtifacts)
        .where(and(eq(stageArtifacts.runId, runId), eq(stageArtifacts.stageId, stageId), eq(stageArtifacts.role, CHECKPOINT_ROLE)))
        .orderBy(desc(stageArtifacts.step), desc(stageArtifacts.linkedAt))
        .all();
      const pruned = links.slice(keep).filter((l) => l.sha256 !== input.alsoKeep);
      return unlinkCheckpoints(tx, runId, stageId, pruned, keep);
    },
    { behavior: 'immediate' },
  );
}

/** Removes the given checkpoint links of one stage and the rows of artifacts left unreferenced. Inside the caller's transaction. */
export function unlinkCheckpoints(tx: Tx, runId: string, stageId: string, pruned: readonly PrunedLink[], keep: number): PruneResult {
  if (pruned.length === 0) return { pruned: [], freed: [] };
  const shas = pruned.map((l) => l.sha256);
  tx.delete(stageArtifacts)
    .where(and(eq(stageArtifacts.runId, runId), eq(stageArtifacts.stageId, stageId), eq(stageArtifacts.role, CHECKPOINT_ROLE), inArray(stageArtifacts.sha256, shas)))
    .run();
  const stillLinked = new Set(
    tx
      .selectDistinct({ sha256: stageArtifacts.sha256 })
      .from(stageArtifacts)
      .where(inArray(stageArtifacts.sha256, shas))
      .all()
      .map((r) => r.sha256),
  );
  const orphans = shas.filter((sha) => !stillLinked.has(sha));
  const freed = orphans.length ? tx.delete(artifacts).where(inArray(artifacts.sha256, orphans)).returning({ sha256: artifacts.sha256, bytes: artifacts.bytes }).all() : [];
  insertEvent(tx, { runId, stageId, type: 'stage.checkpoints-pruned', payload: { keep, pruned: pruned.map((l) => ({ step: l.step, sha256: l.sha256 })), freed: freed.map((f) => f.sha256) } });
  return { pruned: [...pruned], freed };
}

/** Which of these artifacts have a row (are known to the store's records). */
export function recordedArtifacts(db: SieveDb, shas: readonly string[]): Set<string> {
  if (shas.length === 0) return new Set();
  return new Set(
    db
      .select({ sha256: artifacts.sha256 })
      .from(artifacts)
      .where(inArray(artifacts.sha256, [...shas]))
      .all()
      .map((r) => r.sha256),
  );
}

/** The rows of artifacts that no stage links (left by a crash between an unlink and a delete). */
export function unlinkedArtifacts(db: SieveDb): Array<{ sha256: string; bytes: number }> {
  return db
    .select({ sha256: artifacts.sha256, bytes: artifacts.bytes })
    .from(artifacts)
    .where(sql`NOT EXISTS (SELECT 1 FROM ${stageArtifacts} WHERE ${stageArtifacts.sha256} = ${artifacts.sha256})`)
    .all();
}

/** Deletes an artifact's file; one already gone is fine (two pruners, or an earlier crash). */
export async function deleteArtifactFile(home: string, sha256: string): Promise<void> {
  await unlink(path.join(home, artifactRelativePath(sha256))).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}
