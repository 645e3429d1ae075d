// The SQLite tables that hold sieve's history: runs, their stages, metrics, content-addressed
// artifacts and the links between them, and an append-only event journal.
//
// drizzle-kit reads this file to generate migrations/ (`npx drizzle-kit generate --name <what>`);
// activities/store applies them at start. Never imported by workflows (it pulls in drizzle).
// Columns are snake_case so researchers can query the file with plain SQL (docs/db-schema.md);
// timestamps are integer milliseconds since the Unix epoch (UTC), JSON columns hold canonical
// JSON text. Status and kind columns are plain TEXT (the enums are TypeScript-side only), so a
// new stage kind or status needs no migration.
import { sql } from 'drizzle-orm';
import {
  type AnySQLiteColumn,
  foreignKey,
  index,
  integer,
  primaryKey,
  real,
  sqliteTable,
  text,
  uniqueIndex,
} from 'drizzle-orm/sqlite-core';
import type { Recipe, RecipeStage } from './recipe';
import { ARTIFACT_KINDS, RUN_STATUSES, STAGE_STATUSES, type Environment } from './records';
import { STAGE_KINDS, type StageKind } from './stages';

const timestamp = (name: string) => integer(name, { mode: 'timestamp_ms' });
const createdAt = (name: string) =>
  timestamp(name)
    .notNull()
    .$defaultFn(() => new Date());

export const runs = sqliteTable(
  'runs',
  {
    /** The run id, which is also the Temporal workflow id. */
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    /** The parsed recipe with every default filled in. */
    recipe: text('recipe', { mode: 'json' }).$type<Recipe>().notNull(),
    /** sha256 of the canonical JSON of `recipe`. */
    recipeHash: text('recipe_hash').notNull(),
    status: text('status', { enum: RUN_STATUSES }).notNull().default('pending'),
    /** `git:<sha>` or `git:<sha>+dirty.<hash>` in a checkout, `package:<version>` otherwise. */
    codeVersion: text('code_version').notNull(),
    /** The control process's machine; compute stages record their own in stages.environment. */
    environment: text('environment', { mode: 'json' }).$type<Environment>().notNull(),
    /** The run this one resumes (`sieve resume`): lineage across executions. */
    parentRunId: text('parent_run_id').references((): AnySQLiteColumn => runs.id),
    createdAt: createdAt('created_at'),
    startedAt: timestamp('started_at'),
    finishedAt: timestamp('finished_at'),
    error: text('error'),
  },
  (t) => [
    index('runs_name_created_idx').on(t.name, t.createdAt),
    index('runs_status_created_idx').on(t.status, t.createdAt),
    index('runs_created_idx').on(t.createdAt),
    index('runs_parent_idx').on(t.parentRunId),
  ],
);

export const stages = sqliteTable(
  'stages',
  {
    runId: text('run_id')
      .notNull()
      .references(() => runs.id),
    /** The stage's id in the recipe. */
    stageId: text('stage_id').notNull(),
    kind: text('kind', { enum: STAGE_KINDS as [StageKind, ...StageKind[]] }).notNull(),
    status: text('status', { enum: STAGE_STATUSES }).notNull().default('pending'),
    /** Temporal's attempt number of the latest execution (1 = first try); 0 until it starts. */
    attempt: integer('attempt').notNull().default(0),
    step: integer('step').notNull().default(0),
    /** Total steps when the stage has a step count (pretrain: optimizer steps). */
    steps: integer('steps'),
    /** The stage's resolved configuration as it appears in the recipe. */
    config: text('config', { mode: 'json' }).$type<RecipeStage>().notNull(),
    /** sha256 of `cache_basis`; stages with equal keys produce equal outputs. */
    cacheKey: text('cache_key'),
    /** Everything the cache key was computed from, kept so a cache miss can be explained part by part. */
    cacheBasis: text('cache_basis', { mode: 'json' }).$type<Record<string, unknown>>(),
    /** For a cached or reused stage: the stage whose outputs it took. */
    reusedFromRunId: text('reused_from_run_id'),
    reusedFromStageId: text('reused_from_stage_id'),
    /** Why the stage ran or was reused, in words (cache hit, what changed since the last run, --no-cache, resume). */
    reason: text('reason'),
    /** The worker machine that ran the latest attempt. */
    environment: text('environment', { mode: 'json' }).$type<Environment>(),
    startedAt: timestamp('started_at'),
    finishedAt: timestamp('finished_at'),
    /** Time the attempt that finished spent computing (excludes queueing, retries and back-off). */
    computeMs: integer('compute_ms'),
    error: text('error'),
  },
  (t) => [
    primaryKey({ columns: [t.runId, t.stageId] }),
    foreignKey({ columns: [t.reusedFromRunId, t.reusedFromStageId], foreignColumns: [t.runId, t.stageId] }),
    index('stages_cache_key_idx').on(t.cacheKey, t.status),
    index('stages_reused_from_idx').on(t.reusedFromRunId, t.reusedFromStageId),
  ],
);

export const metrics = sqliteTable(
  'metrics',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    runId: text('run_id').notNull(),
    stageId: text('stage_id').notNull(),
    /** The training step the value belongs to; null for a stage's final value. */
    step: integer('step'),
    /** e.g. `loss`, `lr`, `tokens_per_sec`, `ppl/<eval set>`. */
    name: text('name').notNull(),
    /** null when the value was NaN (SQLite cannot store NaN), e.g. a diverged loss. */
    value: real('value'),
    /** Hash of the evaluation protocol the value was measured under; only evaluation metrics carry one. */
    protocolHash: text('protocol_hash'),
    recordedAt: createdAt('recorded_at'),
  },
  (t) => [
    foreignKey({ columns: [t.runId, t.stageId], foreignColumns: [stages.runId, stages.stageId] }),
    // One value per (run, stage, name, step), for idempotent upserts. SQLite treats NULLs as
    // distinct in a unique index, so the final value (step NULL) gets its own partial index.
    uniqueIndex('metrics_step_uq').on(t.runId, t.stageId, t.name, t.step).where(sql`${t.step} IS NOT NULL`),
    uniqueIndex('metrics_final_uq').on(t.runId, t.stageId, t.name).where(sql`${t.step} IS NULL`),
    index('metrics_name_idx').on(t.name),
  ],
);

export const artifacts = sqliteTable(
  'artifacts',
  {
    sha256: text('sha256').primaryKey(),
    bytes: integer('bytes').notNull(),
    kind: text('kind', { enum: ARTIFACT_KINDS }).notNull(),
    /** Relative to SIEVE_HOME: `artifacts/<first two hex digits>/<sha256>`. */
    path: text('path').notNull(),
    /** The stage that first stored these bytes; later producers of identical bytes only add links. */
    producedByRunId: text('produced_by_run_id'),
    producedByStageId: text('produced_by_stage_id'),
    createdAt: createdAt('created_at'),
  },
  (t) => [
    foreignKey({ columns: [t.producedByRunId, t.producedByStageId], foreignColumns: [stages.runId, stages.stageId] }),
    index('artifacts_produced_by_idx').on(t.producedByRunId, t.producedByStageId),
  ],
);

/** Which stage used or made which artifact, in which role (`input`, `model`, `checkpoint`, `report`, …). */
export const stageArtifacts = sqliteTable(
  'stage_artifacts',
  {
    runId: text('run_id').notNull(),
    stageId: text('stage_id').notNull(),
    role: text('role').notNull(),
    sha256: text('sha256')
      .notNull()
      .references(() => artifacts.sha256),
    /** The step a checkpoint was taken at; null for other roles. */
    step: integer('step'),
    linkedAt: createdAt('linked_at'),
  },
  (t) => [
    primaryKey({ columns: [t.runId, t.stageId, t.role, t.sha256] }),
    foreignKey({ columns: [t.runId, t.stageId], foreignColumns: [stages.runId, stages.stageId] }),
    index('stage_artifacts_sha256_idx').on(t.sha256),
  ],
);

/**
 * The journal: everything that happened, in order (`id`). Append-only: the store has no
 * update or delete for it, and each row's `hash` chains it to the previous event of the
 * same run (sha256 over the previous hash and this row's canonical JSON), so an edit or a
 * deletion shows up when the chain is verified.
 */
export const events = sqliteTable(
  'events',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    runId: text('run_id')
      .notNull()
      .references(() => runs.id),
    /** null for run-level events. */
    stageId: text('stage_id'),
    /** Dotted, e.g. `run.started`, `stage.cache-hit`, `stage.resumed`, `stage.failed`. */
    type: text('type').notNull(),
    payload: text('payload', { mode: 'json' }).$type<Record<string, unknown>>().notNull(),
    at: createdAt('at'),
    hash: text('hash').notNull(),
  },
  (t) => [index('events_run_idx').on(t.runId, t.id)],
);
