// Row-level reads shared by the stage cache (./cache.ts) and the CLI's read models
// (cli/read-models.ts): a stage's metrics and its artifact links.
import { and, asc, eq } from 'drizzle-orm';
import type { StageOutput } from '../../schemas/pipeline';
import { FINISHED_STAGE_STATUSES, type ArtifactKind } from '../../schemas/records';
import { artifacts, metrics, stageArtifacts, stages } from '../../schemas/tables';
import type { SieveDb } from './db';

export type MetricRow = typeof metrics.$inferSelect;

/** Metric rows in recording order, optionally for one stage and/or one metric name (a loss curve, say). */
export function listMetrics(db: SieveDb, runId: string, stageId?: string, name?: string): MetricRow[] {
  return db
    .select()
    .from(metrics)
    .where(
      and(
        eq(metrics.runId, runId),
        stageId === undefined ? undefined : eq(metrics.stageId, stageId),
        name === undefined ? undefined : eq(metrics.name, name),
      ),
    )
    .orderBy(asc(metrics.id))
    .all();
}

/** The artifacts a stage used or made, with their role (`input`, `model`, `checkpoint`, …), in link order. */
export function stageArtifactRows(db: SieveDb, runId: string, stageId: string) {
  return db
    .select({
      sha256: stageArtifacts.sha256,
      role: stageArtifacts.role,
      step: stageArtifacts.step,
      bytes: artifacts.bytes,
      kind: artifacts.kind,
    })
    .from(stageArtifacts)
    .innerJoin(artifacts, eq(artifacts.sha256, stageArtifacts.sha256))
    .where(and(eq(stageArtifacts.runId, runId), eq(stageArtifacts.stageId, stageId)))
    .orderBy(asc(stageArtifacts.linkedAt), asc(stageArtifacts.role), asc(stageArtifacts.sha256))
    .all();
}

/** A stage's final value per metric: step-less values win; otherwise the value at the highest step. */
export function finalMetrics(rows: readonly MetricRow[]): Record<string, number | null> {
  const best = new Map<string, MetricRow>();
  for (const row of rows) {
    const seen = best.get(row.name);
    if (!seen || (seen.step !== null && (row.step === null || row.step > seen.step))) best.set(row.name, row);
  }
  return Object.fromEntries([...best].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, row]) => [name, row.value]));
}

/** Link roles that record how a stage got where it is (its inputs, checkpoints, history segments), not what it hands on. */
export const NOT_OUTPUT_ROLES: ReadonlySet<string> = new Set(['input', 'checkpoint', 'history-segment']);

/** A finished stage's outputs as a later stage (or run) takes them: the artifacts it hands on and its final metrics. */
export function stageOutputOf(artifactRows: readonly { sha256: string; bytes: number; kind: ArtifactKind; role: string }[], metricValues: Record<string, number | null>): StageOutput {
  return {
    artifacts: artifactRows.filter((a) => !NOT_OUTPUT_ROLES.has(a.role)).map(({ sha256, bytes, kind, role }) => ({ sha256, bytes, kind, role })),
    metrics: Object.fromEntries(Object.entries(metricValues).map(([k, v]) => [k, v ?? NaN])),
    computeMs: 0,
    events: [],
  };
}

/** The outputs of a run's finished stages (completed, cached or reused), by stage id. */
export function finishedStageOutputs(db: SieveDb, runId: string): Record<string, StageOutput> {
  const finished = db.select({ stageId: stages.stageId, status: stages.status }).from(stages).where(eq(stages.runId, runId)).all();
  const out: Record<string, StageOutput> = {};
  for (const { stageId, status } of finished) {
    if (!(FINISHED_STAGE_STATUSES as readonly string[]).includes(status)) continue;
    out[stageId] = stageOutputOf(stageArtifactRows(db, runId, stageId), finalMetrics(listMetrics(db, runId, stageId)));
  }
  return out;
}
