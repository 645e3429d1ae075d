// The writes the recording activities make, one function per table: runs, stages, metrics and
// artifacts (with their links to stages). The journal is ./journal.ts.
//
// Every write is idempotent, because Temporal retries activities: creating a run or a stage
// again, recording the same metric again or linking the same artifact again changes nothing
// (or overwrites with the same value). Each call that writes several rows does so in one
// IMMEDIATE transaction, so another process never sees half of it and never hits a
// reader-to-writer upgrade conflict. A change of run or stage status is journaled in the same
// transaction.
import { and, desc, eq, isNotNull, isNull, ne } from 'drizzle-orm';
import type { SweepPoint } from '../../schemas/pipeline';
import type { Recipe, RecipeStage } from '../../schemas/recipe';
import {
  TERMINAL_RUN_STATUSES,
  TERMINAL_STAGE_STATUSES,
  type ArtifactKind,
  type Environment,
  type RunStatus,
  type StageStatus,
} from '../../schemas/records';
import { definitionOf } from '../../schemas/stages';
import { artifacts, events, metrics, runs, stageArtifacts, stages } from '../../schemas/tables';
import { artifactRelativePath } from './artifacts';
import type { StageCacheInput } from './cache';
import type { SieveDb } from './db';
import { recipeHash } from './hash';
import { insertEvent } from './journal';
import type { StageSeal } from './seal';

export type RunRow = typeof runs.$inferSelect;
export type StageRow = typeof stages.$inferSelect;

export interface CreateRunInput {
  /** The run id = the Temporal workflow id. */
  id: string;
  recipe: Recipe;
  codeVersion: string;
  environment: Environment;
  parentRunId?: string | null;
  /** `sieve reproduce`: the run this one runs again, recorded in its `run.created` event. */
  reproduces?: string | null;
  /** A sweep's run: the sweep and its point (null: the sweep's shared stages), recorded in its `run.created` event. */
  sweep?: { id: string; point: SweepPoint | null } | null;
}

/**
 * Creates the run (status `pending`) and journals `run.created`. Idempotent on the id:
 * creating it again returns the existing row, unless the recipe differs, which is an error
 * (one run id never means two experiments).
 */
export function createRun(db: SieveDb, input: CreateRunInput): RunRow {
  const hash = recipeHash(input.recipe);
  return db.transaction(
    (tx) => {
      const existing = tx.select().from(runs).where(eq(runs.id, input.id)).get();
      if (existing) {
        if (existing.recipeHash !== hash) {
          throw new Error(`run ${input.id} already exists with a different recipe (hash ${existing.recipeHash}, not ${hash})`);
        }
        return existing;
      }
      if (input.parentRunId && !tx.select({ id: runs.id }).from(runs).where(eq(runs.id, input.parentRunId)).get()) {
        throw new Error(`run ${input.id} names parent run ${input.parentRunId}, which is not in the database`);
      }
      const row = tx
        .insert(runs)
        .values({
          id: input.id,
          name: input.recipe.name,
          recipe: input.recipe,
          recipeHash: hash,
          codeVersion: input.codeVersion,
          environment: input.environment,
          parentRunId: input.parentRunId ?? null,
        })
        .returning()
        .get();
      // Linked to the run created before it, so deleting or rewriting a whole run breaks the next one's link (sieve verify).
      const previous = tx
        .select({ runId: events.runId, hash: events.hash })
        .from(events)
        .where(and(eq(events.type, 'run.created'), ne(events.runId, input.id)))
        .orderBy(desc(events.id))
        .limit(1)
        .get();
      insertEvent(tx, {
        runId: input.id,
        type: 'run.created',
        payload: {
          recipeHash: hash,
          parentRunId: row.parentRunId,
          codeVersion: input.codeVersion,
          previous: previous ?? null,
          ...(input.reproduces ? { reproduces: input.reproduces } : {}),
          ...(input.sweep ? { sweep: input.sweep } : {}),
        },
      });
      return row;
    },
    { behavior: 'immediate' },
  );
}

/**
 * Sets the run's status; the first `running` stamps started_at, a terminal status stamps
 * finished_at. A change of status is journaled as `run.<status>`; repeating the current
 * status is a no-op.
 */
export function setRunStatus(db: SieveDb, runId: string, status: RunStatus, error: string | null = null): RunRow {
  return db.transaction(
    (tx) => {
      const current = tx.select().from(runs).where(eq(runs.id, runId)).get();
      if (!current) throw new Error(`no run ${runId} in the database`);
      if (current.status === status && current.error === error) return current;
      const now = new Date();
      const row = tx
        .update(runs)
        .set({
          status,
          error,
          startedAt: status === 'running' ? (current.startedAt ?? now) : current.startedAt,
          finishedAt: (TERMINAL_RUN_STATUSES as readonly RunStatus[]).includes(status) ? now : null,
        })
        .where(eq(runs.id, runId))
        .returning()
        .get();
      if (current.status !== status) insertEvent(tx, { runId, type: `run.${status}`, payload: error === null ? {} : { error } });
      return row;
    },
    { behavior: 'immediate' },
  );
}

export interface UpsertStageInput {
  runId: string;
  /** The stage as the parsed recipe has it: gives the id, kind, config and step count. */
  stage: RecipeStage;
  status?: StageStatus;
  attempt?: number;
  step?: number;
  cacheKey?: string | null;
  cacheBasis?: StageCacheInput | null;
  reusedFrom?: { runId: string; stageId: string } | null;
  reason?: string | null;
  environment?: Environment | null;
  computeMs?: number | null;
  error?: string | null;
  /** What the stage produced, sealed into the journal with its change of status (./seal.ts). */
  seal?: StageSeal;
}

/**
 * Creates the stage row or updates the fields given (fields left out keep their value).
 * The first `running` stamps started_at, a terminal status stamps finished_at, and a
 * change of status is journaled as `stage.<status>` with the reason or error.
 */
export function upsertStage(db: SieveDb, input: UpsertStageInput): StageRow {
  const { runId, stage } = input;
  return db.transaction(
    (tx) => {
      const key = and(eq(stages.runId, runId), eq(stages.stageId, stage.id));
      const current = tx.select().from(stages).where(key).get();
      const now = new Date();
      const status = input.status ?? current?.status ?? 'pending';
      const patch = {
        status,
        ...defined({
          attempt: input.attempt,
          step: input.step,
          cacheKey: input.cacheKey,
          cacheBasis: input.cacheBasis === undefined ? undefined : (input.cacheBasis as Record<string, unknown> | null),
          reusedFromRunId: input.reusedFrom === undefined ? undefined : (input.reusedFrom?.runId ?? null),
          reusedFromStageId: input.reusedFrom === undefined ? undefined : (input.reusedFrom?.stageId ?? null),
          reason: input.reason,
          environment: input.environment,
          computeMs: input.computeMs === undefined || input.computeMs === null ? input.computeMs : Math.round(input.computeMs),
          error: input.error,
        }),
        startedAt: status === 'running' ? (current?.startedAt ?? now) : (current?.startedAt ?? null),
        finishedAt: (TERMINAL_STAGE_STATUSES as readonly StageStatus[]).includes(status) ? (current?.status === status ? current.finishedAt : now) : null,
      };
      const row = current
        ? tx.update(stages).set(patch).where(key).returning().get()
        : tx
            .insert(stages)
            .values({
              runId,
              stageId: stage.id,
              kind: stage.kind,
              config: stage,
              steps: definitionOf(stage.kind).steps(stage),
              ...patch,
            })
            .returning()
            .get();
      if (current?.status !== status) {
        const payload = defined({ reason: row.reason ?? undefined, error: row.error ?? undefined, attempt: row.attempt, seal: input.seal });
        insertEvent(tx, { runId, stageId: stage.id, type: `stage.${status}`, payload });
      }
      return row;
    },
    { behavior: 'immediate' },
  );
}

export interface MetricInput {
  runId: string;
  stageId: string;
  name: string;
  /** NaN is stored as NULL (SQLite has no NaN). */
  value: number;
  /** The training step; null or absent for the stage's final value. */
  step?: number | null;
  /** Hash of the evaluation protocol, for evaluation metrics. */
  protocolHash?: string | null;
}

/** Records metric values, replacing any earlier value for the same (run, stage, name, step). One transaction. */
export function recordMetrics(db: SieveDb, values: readonly MetricInput[]): void {
  if (values.length === 0) return;
  db.transaction(
    (tx) => {
      for (const m of values) {
        const step = m.step ?? null;
        const row = {
          runId: m.runId,
          stageId: m.stageId,
          name: m.name,
          step,
          value: Number.isNaN(m.value) ? null : m.value,
          protocolHash: m.protocolHash ?? null,
          recordedAt: new Date(),
        };
        // Each unique index is partial (step NULL vs not), so the conflict target names the matching one.
        tx.insert(metrics)
          .values(row)
          .onConflictDoUpdate(
            step === null
              ? {
                  target: [metrics.runId, metrics.stageId, metrics.name],
                  targetWhere: isNull(metrics.step),
                  set: { value: row.value, protocolHash: row.protocolHash, recordedAt: row.recordedAt },
                }
              : {
                  target: [metrics.runId, metrics.stageId, metrics.name, metrics.step],
                  targetWhere: isNotNull(metrics.step),
                  set: { value: row.value, protocolHash: row.protocolHash, recordedAt: row.recordedAt },
                },
          )
          .run();
      }
    },
    { behavior: 'immediate' },
  );
}

export interface ArtifactLink {
  runId: string;
  stageId: string;
  /** `input` for an artifact the stage consumed; `model`, `checkpoint`, `report`, … for what it made. */
  role: string;
  artifact: { sha256: string; bytes: number; kind: ArtifactKind };
  /** The step a checkpoint was taken at. */
  step?: number | null;
}

/**
 * Records artifacts and links them to their stages. An artifact row is written once per
 * sha256 (the first stage to make those bytes is its producer; an `input` link never
 * claims to produce); a repeated link is a no-op. One transaction.
 */
export function linkArtifacts(db: SieveDb, links: readonly ArtifactLink[]): void {
  if (links.length === 0) return;
  db.transaction(
    (tx) => {
      for (const link of links) {
        const producer = link.role === 'input' ? null : link;
        tx.insert(artifacts)
          .values({
            sha256: link.artifact.sha256,
            bytes: link.artifact.bytes,
            kind: link.artifact.kind,
            path: artifactRelativePath(link.artifact.sha256),
            producedByRunId: producer?.runId ?? null,
            producedByStageId: producer?.stageId ?? null,
          })
          .onConflictDoNothing()
          .run();
        if (producer) {
          // An artifact first seen as an input (say, imported) gets its producer when one turns up.
          tx.update(artifacts)
            .set({ producedByRunId: producer.runId, producedByStageId: producer.stageId })
            .where(and(eq(artifacts.sha256, link.artifact.sha256), isNull(artifacts.producedByRunId)))
            .run();
        }
        tx.insert(stageArtifacts)
          .values({ runId: link.runId, stageId: link.stageId, role: link.role, sha256: link.artifact.sha256, step: link.step ?? null })
          .onConflictDoNothing()
          .run();
      }
    },
    { behavior: 'immediate' },
  );
}


/** The object without its undefined-valued keys, so an update leaves those columns alone. */
function defined<T extends Record<string, unknown>>(object: T): Partial<T> {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined)) as Partial<T>;
}
