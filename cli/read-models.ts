// The read models the CLI prints: `sieve history`, `sieve status <run>`, `sieve show <run>` (and
// through it `compare`, `resume` and the run summary), in the shapes of schemas/cli.ts; and the
// per-step curves the HTML reports draw.
import { and, desc, eq, sql } from 'drizzle-orm';
import type { HistoryEntry, ShowOutput, ShowStage, StageRef, StatusOutput } from '../schemas/cli';
import type { RunStatus } from '../schemas/records';
import { stageInputs } from '../schemas/recipe';
import { events, runs, stages } from '../schemas/tables';
import type { ArtifactStore } from '../activities/store/artifacts';
import type { SieveDb } from '../activities/store/db';
import { finalMetrics, listMetrics, stageArtifactRows, type MetricRow } from '../activities/store/reads';
import type { RunRow, StageRow } from '../activities/store/writes';

export interface ListRunsOptions {
  name?: string;
  status?: RunStatus;
  /** Default 50. */
  limit?: number;
}

/** Runs, newest first. */
export function listRuns(db: SieveDb, options: ListRunsOptions = {}): HistoryEntry[] {
  const filters = [
    options.name === undefined ? undefined : eq(runs.name, options.name),
    options.status === undefined ? undefined : eq(runs.status, options.status),
  ];
  return db
    .select()
    .from(runs)
    .where(and(...filters))
    .orderBy(desc(runs.createdAt), desc(sql`${runs}.rowid`))
    .limit(options.limit ?? 50)
    .all()
    .map(historyEntry);
}

function historyEntry(run: RunRow): HistoryEntry {
  return {
    id: run.id,
    name: run.name,
    status: run.status,
    parentRunId: run.parentRunId,
    recipeHash: run.recipeHash,
    codeVersion: run.codeVersion,
    createdAt: run.createdAt.toISOString(),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    error: run.error,
  };
}

/** The run's status and per-stage progress as recorded (the shape of `sieve status <run> --json`), or null. */
export function getRunStatus(db: SieveDb, runId: string): StatusOutput | null {
  const run = db.select().from(runs).where(eq(runs.id, runId)).get();
  if (!run) return null;
  return {
    id: run.id,
    status: run.status,
    stages: orderedStages(db, run).map((s) => ({ id: s.stageId, status: s.status, step: s.step, steps: s.steps })),
  };
}

/** Everything recorded about a run (the shape of `sieve show <run> --json`), or null. */
export function getRun(db: SieveDb, store: ArtifactStore, runId: string): ShowOutput | null {
  const run = db.select().from(runs).where(eq(runs.id, runId)).get();
  if (!run) return null;
  const byStage = new Map<string, MetricRow[]>();
  for (const m of listMetrics(db, runId)) byStage.set(m.stageId, [...(byStage.get(m.stageId) ?? []), m]);
  const showStages = orderedStages(db, run).map((s): ShowStage => {
    const wallMs = s.startedAt && s.finishedAt ? s.finishedAt.getTime() - s.startedAt.getTime() : null;
    return {
      id: s.stageId,
      kind: s.kind,
      status: s.status,
      from: stageInputs(s.config),
      attempt: s.attempt,
      step: s.step,
      steps: s.steps,
      metrics: finalMetrics(byStage.get(s.stageId) ?? []),
      artifacts: stageArtifactRows(db, runId, s.stageId).map((a) => ({ ...a, path: store.path(a.sha256) })),
      cached: s.reusedFromRunId !== null,
      reusedFrom: s.reusedFromRunId && s.reusedFromStageId ? { runId: s.reusedFromRunId, stageId: s.reusedFromStageId } : null,
      reason: s.reason,
      cacheKey: s.cacheKey,
      timings: { startedAt: iso(s.startedAt), finishedAt: iso(s.finishedAt), wallMs, computeMs: s.computeMs },
      error: s.error,
    };
  });
  const created = db.select({ payload: events.payload }).from(events).where(and(eq(events.runId, runId), eq(events.type, 'run.created'))).get();
  const reproduces = (created?.payload as { reproduces?: string } | undefined)?.reproduces ?? null;
  return { ...historyEntry(run), reproduces, environment: run.environment, recipe: run.recipe, stages: showStages };
}

/** One metric of a stage against its step, and the stage whose rows they are. */
export interface MetricCurve {
  source: StageRef;
  points: { step: number; value: number | null }[];
}

/**
 * The per-step values of `name` for a stage. A cached or reused stage copied only its final values,
 * so its curve is read from the stage it took its outputs from (following a chain of such links).
 */
export function metricCurve(db: SieveDb, stage: StageRef, name: string): MetricCurve {
  let source = stage;
  // The recorder never links a stage to itself, but a damaged database must not hang a report.
  const visited = new Set<string>();
  while (!visited.has(`${source.runId}/${source.stageId}`)) {
    visited.add(`${source.runId}/${source.stageId}`);
    const row = db.select().from(stages).where(and(eq(stages.runId, source.runId), eq(stages.stageId, source.stageId))).get();
    if (!row?.reusedFromRunId || !row.reusedFromStageId) break;
    source = { runId: row.reusedFromRunId, stageId: row.reusedFromStageId };
  }
  const points = listMetrics(db, source.runId, source.stageId, name)
    .filter((m) => m.step !== null)
    .map((m) => ({ step: m.step!, value: m.value }))
    .sort((a, b) => a.step - b.step);
  return { source, points };
}

function orderedStages(db: SieveDb, run: RunRow): StageRow[] {
  const rows = db.select().from(stages).where(eq(stages.runId, run.id)).all();
  const order = new Map(run.recipe.stages.map((s, i) => [s.id, i]));
  return rows.sort((a, b) => (order.get(a.stageId) ?? Infinity) - (order.get(b.stageId) ?? Infinity));
}

function iso(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}
