// `sieve gc`: bounds SIEVE_HOME/artifacts by deleting what nothing needs, decided from SQLite:
//   - checkpoints of finished runs beyond their stage's `keepCheckpoints` (stages of runs still
//     going are pruned by their own control activity as checkpoints land);
//   - artifacts no record references (a crash between a pruning and its deletion, a stage that
//     stored files and died before they were recorded);
//   - leftovers in artifacts/tmp.
// It never touches what a resume, the stage cache or a consumer needs: outputs and inputs of
// stages, history segments, and the newest `keepCheckpoints` intact checkpoints of every stage
// (so the newest one that can be resumed from always). Files that may belong to work in progress are left for a later gc: anything
// younger than the grace period, and, while a run is unfinished, any file written since it began
// (it may be storing those very bits again). With `dryRun` nothing is changed; the report says what
// would be.
import { and, eq, inArray, notInArray } from 'drizzle-orm';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { artifacts, runs, stageArtifacts, stages } from '../../schemas/tables';
import { ArtifactCorruptError, ArtifactMissingError, artifactRelativePath, createArtifactStore } from './artifacts';
import type { SieveDb } from './db';
import { CHECKPOINT_ROLE, deleteArtifactFile, keepCheckpointsOf, unlinkCheckpoints, unlinkedArtifacts, type PrunedLink } from './prune';

/** Files younger than this may be in the middle of being written or recorded: gc leaves them. */
export const GC_GRACE_SEC = 3600;

const SHA256_NAME = /^[0-9a-f]{64}$/;
const UNFINISHED = ['pending', 'running'] as const;

const GcFile = z.strictObject({
  /** Relative to SIEVE_HOME. */
  path: z.string(),
  bytes: z.number().int().nonnegative(),
  why: z.string(),
});

/** What `sieve gc [--dry-run] --json` prints. */
export const GcReport = z.strictObject({
  dryRun: z.boolean(),
  graceSec: z.number(),
  /** Checkpoint links removed from stages of finished runs (their files go once nothing else links them). */
  pruned: z.array(z.strictObject({ runId: z.string(), stageId: z.string(), step: z.number().int().nullable(), sha256: z.string() })),
  /** Files deleted (with --dry-run: that would be). */
  deleted: z.array(GcFile),
  /** Their total size. */
  bytes: z.number().int().nonnegative(),
  /** Files nothing references that were left for a later gc, and why. */
  deferred: z.array(GcFile),
});
export type GcReport = z.infer<typeof GcReport>;

export interface GcOptions {
  dryRun: boolean;
  /** Now, in ms since the epoch (a parameter so tests need not wait an hour). */
  now?: number;
}

export async function collectGarbage(db: SieveDb, home: string, options: GcOptions): Promise<GcReport> {
  const now = options.now ?? Date.now();
  const graceEdge = now - GC_GRACE_SEC * 1000;
  const live = db.select({ id: runs.id, createdAt: runs.createdAt }).from(runs).where(inArray(runs.status, [...UNFINISHED])).all();
  const oldestLive = live.reduce<{ id: string; createdAt: Date } | null>((a, r) => (a && a.createdAt <= r.createdAt ? a : r), null);
  const report: GcReport = { dryRun: options.dryRun, graceSec: GC_GRACE_SEC, pruned: [], deleted: [], bytes: 0, deferred: [] };

  /** A file that may be deleted now, or why it must wait; null when there is no such file. */
  const judge = async (relative: string, why: string, needsGrace: boolean) => {
    const info = await stat(path.join(home, relative)).catch(() => null);
    if (!info) return null;
    const entry = { path: relative, bytes: info.isFile() ? info.size : await treeBytes(path.join(home, relative)), why };
    const written = info.isFile() ? info.mtimeMs : await newestMtime(path.join(home, relative));
    if (needsGrace && written > graceEdge) return { ...entry, wait: `written less than ${GC_GRACE_SEC / 60} minutes ago` };
    if (oldestLive && written >= oldestLive.createdAt.getTime()) return { ...entry, wait: `written since run ${oldestLive.id}, which has not finished, began` };
    return { ...entry, wait: null };
  };
  const settle = async (file: NonNullable<Awaited<ReturnType<typeof judge>>>, remove: () => Promise<void>) => {
    const { wait, ...entry } = file;
    if (wait !== null) return void report.deferred.push({ ...entry, why: `${entry.why}; kept for now: ${wait}` });
    if (!options.dryRun) await remove();
    report.deleted.push(entry);
    report.bytes += entry.bytes;
  };

  // 1. Checkpoints of finished runs beyond their stage's keepCheckpoints, and what that frees.
  const freed = new Map<string, string>();
  const prunedWhy = (sha256: string) => {
    const p = report.pruned.find((l) => l.sha256 === sha256)!;
    return `checkpoint at step ${p.step} of stage ${p.stageId} of run ${p.runId}, beyond its keepCheckpoints`;
  };
  const store = createArtifactStore(home);
  const intact = (sha256: string) =>
    store.verify(sha256).then(
      () => true,
      (error: unknown) => {
        if (error instanceof ArtifactMissingError || error instanceof ArtifactCorruptError) return false;
        throw error;
      },
    );
  for (const { runId, stageId, keep, victims } of await prunableCheckpoints(db, live.map((r) => r.id), intact)) {
    for (const v of victims) report.pruned.push({ runId, stageId, step: v.step, sha256: v.sha256 });
    if (options.dryRun) continue;
    const result = db.transaction((tx) => unlinkCheckpoints(tx, runId, stageId, victims, keep), { behavior: 'immediate' });
    for (const f of result.freed) freed.set(f.sha256, prunedWhy(f.sha256));
  }
  if (options.dryRun) for (const sha of wouldBeFreed(db, report.pruned)) freed.set(sha, prunedWhy(sha));
  // Rows no link references (pruned, then a crash before the delete).
  for (const row of unlinkedArtifacts(db)) {
    if (!options.dryRun) db.delete(artifacts).where(eq(artifacts.sha256, row.sha256)).run();
    freed.set(row.sha256, 'recorded artifact no stage references');
  }
  for (const [sha256, why] of freed) {
    const file = await judge(artifactRelativePath(sha256), why, false);
    if (file) await settle(file, () => deleteArtifactFile(home, sha256));
  }

  // 2. Files in the store that no record names.
  const recorded = new Set(db.select({ sha256: artifacts.sha256 }).from(artifacts).all().map((r) => r.sha256));
  for (const sha256 of await storedArtifacts(home)) {
    if (recorded.has(sha256) || freed.has(sha256)) continue;
    const file = await judge(artifactRelativePath(sha256), 'artifact file no record references', true);
    if (file) await settle(file, () => deleteArtifactFile(home, sha256));
  }

  // 3. Temporary files and directories.
  const tmp = path.join('artifacts', 'tmp');
  for (const name of await readdir(path.join(home, tmp)).catch(() => [] as string[])) {
    const file = await judge(path.join(tmp, name), 'temporary file', true);
    if (file) await settle(file, () => rm(path.join(home, tmp, name), { recursive: true, force: true }));
  }
  return report;
}

/**
 * Per stage of a finished run, the checkpoint links older than its newest `keepCheckpoints` intact
 * ones. Only stages with more links than that are verified, so a settled store costs no hashing.
 */
async function prunableCheckpoints(
  db: SieveDb,
  liveRuns: string[],
  intact: (sha256: string) => Promise<boolean>,
): Promise<Array<{ runId: string; stageId: string; keep: number; victims: PrunedLink[] }>> {
  const rows = db
    .select({ runId: stageArtifacts.runId, stageId: stageArtifacts.stageId, step: stageArtifacts.step, sha256: stageArtifacts.sha256, config: stages.config })
    .from(stageArtifacts)
    .innerJoin(stages, and(eq(stages.runId, stageArtifacts.runId), eq(stages.stageId, stageArtifacts.stageId)))
    .where(and(eq(stageArtifacts.role, CHECKPOINT_ROLE), notInArray(stageArtifacts.runId, liveRuns)))
    .all();
  const byStage = new Map<string, typeof rows>();
  for (const row of rows) {
    const key = JSON.stringify([row.runId, row.stageId]);
    byStage.set(key, [...(byStage.get(key) ?? []), row]);
  }
  const out: Array<{ runId: string; stageId: string; keep: number; victims: PrunedLink[] }> = [];
  for (const links of byStage.values()) {
    const keep = keepCheckpointsOf(links[0].config);
    if (keep === null || links.length <= keep) continue;
    links.sort((a, b) => (b.step ?? -1) - (a.step ?? -1));
    // A damaged newer checkpoint does not count towards `keep`: it is never deleted for being
    // damaged, but the intact ones behind it are what a resume falls back to.
    let kept = 0;
    let cut = 0;
    while (cut < links.length && kept < keep) if (await intact(links[cut++].sha256)) kept++;
    const victims = links.slice(cut).map((l) => ({ step: l.step, sha256: l.sha256 }));
    if (victims.length > 0) out.push({ runId: links[0].runId, stageId: links[0].stageId, keep, victims });
  }
  return out;
}

/** The artifacts whose every link is among `pruned` (what a real run would free). */
function wouldBeFreed(db: SieveDb, pruned: GcReport['pruned']): string[] {
  const shas = [...new Set(pruned.map((p) => p.sha256))];
  if (shas.length === 0) return [];
  const links = db.select({ runId: stageArtifacts.runId, stageId: stageArtifacts.stageId, role: stageArtifacts.role, sha256: stageArtifacts.sha256 }).from(stageArtifacts).where(inArray(stageArtifacts.sha256, shas)).all();
  const removed = new Set(pruned.map((p) => JSON.stringify([p.runId, p.stageId, p.sha256])));
  return shas.filter((sha) => links.every((l) => l.sha256 !== sha || (l.role === CHECKPOINT_ROLE && removed.has(JSON.stringify([l.runId, l.stageId, l.sha256])))));
}

/** The sha256 of every file in the store's `<aa>/<sha256>` layout. */
async function storedArtifacts(home: string): Promise<string[]> {
  const root = path.join(home, 'artifacts');
  const found: string[] = [];
  for (const dir of await readdir(root).catch(() => [] as string[])) {
    if (!/^[0-9a-f]{2}$/.test(dir)) continue;
    for (const name of await readdir(path.join(root, dir))) if (SHA256_NAME.test(name) && name.startsWith(dir)) found.push(name);
  }
  return found.sort();
}

/** The newest modification under a path: a directory being written into is as young as its youngest file. */
async function newestMtime(target: string): Promise<number> {
  const info = await stat(target);
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = info.mtimeMs;
  for (const name of await readdir(target)) newest = Math.max(newest, await newestMtime(path.join(target, name)));
  return newest;
}

async function treeBytes(target: string): Promise<number> {
  const info = await stat(target);
  if (!info.isDirectory()) return info.size;
  let bytes = 0;
  for (const name of await readdir(target)) bytes += await treeBytes(path.join(target, name));
  return bytes;
}
