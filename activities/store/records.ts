// The records layer: the small set of reads and writes the recording activities and the CLI
// make against the sieve database, plus the identities they are keyed on (recipe hash,
// stage cache key, code version, environment).
//
// Every write is idempotent, because Temporal retries activities: creating a run or a stage
// again, recording the same metric again or linking the same artifact again changes nothing
// (or overwrites with the same value). Each call that writes several rows does so in one
// IMMEDIATE transaction, so another process never sees half of it and never hits a
// reader-to-writer upgrade conflict. Status changes are journaled into `events`
// automatically; everything else is journaled by calling appendEvent.
import { and, asc, desc, eq, inArray, isNotNull, isNull, sql } from 'drizzle-orm';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { canonicalJson } from '../../schemas/canonical';
import type { HistoryEntry, ShowOutput, ShowStage, StatusOutput } from '../../schemas/cli';
import { stageInputs, type Recipe, type RecipeStage } from '../../schemas/recipe';
import {
  artifacts,
  events,
  FINISHED_STAGE_STATUSES,
  metrics,
  runs,
  stageArtifacts,
  stages,
  type ArtifactKind,
  type Environment,
  type RunStatus,
  type StageStatus,
} from '../../schemas/tables';
import { ArtifactCorruptError, ArtifactMissingError, artifactRelativePath, type ArtifactStore } from './artifacts';
import type { SieveDb } from './db';

export type RunRow = typeof runs.$inferSelect;
export type StageRow = typeof stages.$inferSelect;
export type MetricRow = typeof metrics.$inferSelect;
export type EventRow = typeof events.$inferSelect;

const REPO_ROOT = path.resolve(__dirname, '../..');
const TERMINAL_RUN: readonly RunStatus[] = ['completed', 'failed', 'cancelled'];
const TERMINAL_STAGE: readonly StageStatus[] = ['completed', 'cached', 'reused', 'failed', 'skipped', 'cancelled'];

// ---------------------------------------------------------------------------------------
// Identities

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** sha256 of the recipe's canonical JSON: equal for recipes that mean the same, whatever their formatting. */
export function recipeHash(recipe: Recipe): string {
  return sha256Hex(canonicalJson(recipe));
}

/** Everything a stage's output depends on. Its canonical JSON is stored as the stage's cache basis. */
export interface StageCacheInput {
  kind: string;
  /** The stage's cache configuration: `stageCacheConfig(recipe, stage)` from schemas/recipe.ts. */
  config: unknown;
  /** sha256 of each input artifact, in `from` order. */
  inputs: string[];
  /** Hash of the data the stage reads (train and/or eval text, per set name). */
  dataHash: string;
  codeVersion: string;
}

/** The stage cache key: sha256 of the canonical JSON of the cache input. */
export function stageCacheKey(input: StageCacheInput): string {
  return sha256Hex(canonicalJson(input));
}

let memoCodeVersion: string | undefined;

/**
 * The version of the code this process runs: `git:<sha>` in a clean checkout,
 * `git:<sha>+dirty.<hash>` when tracked files differ from HEAD or untracked files exist
 * (the hash covers the diff and the untracked files' contents, so two different dirty
 * trees never share a version), and `package:<version>` outside a git checkout. Computed
 * once per process: the code a long-lived worker runs is the code it loaded at start, not
 * what is on disk later.
 */
export function codeVersion(): string {
  memoCodeVersion ??= computeCodeVersion();
  return memoCodeVersion;
}

function computeCodeVersion(): string {
  const git = (...args: string[]): Buffer =>
    execFileSync('git', args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'ignore'], maxBuffer: 1 << 30 });
  try {
    // Only sieve's own checkout counts, not a repository that happens to contain an installed copy.
    if (path.resolve(git('rev-parse', '--show-toplevel').toString().trim()) !== REPO_ROOT) throw new Error('not our checkout');
    const head = git('rev-parse', 'HEAD').toString().trim();
    const hash = createHash('sha256').update(git('diff', 'HEAD', '--binary'));
    const untracked = git('ls-files', '--others', '--exclude-standard', '-z').toString().split('\0').filter(Boolean).sort();
    for (const file of untracked) {
      hash.update(`\0${file}\0`);
      hash.update(readFileSync(path.join(REPO_ROOT, file)));
    }
    const dirty = git('status', '--porcelain').length > 0;
    return dirty ? `git:${head}+dirty.${hash.digest('hex').slice(0, 16)}` : `git:${head}`;
  } catch {
    const pkg = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
    return `package:${pkg.version}`;
  }
}

/** Variables that change threading, devices or where sieve keeps things; nothing else is recorded. */
const RECORDED_ENV = [
  'SIEVE_HOME',
  'TEMPORAL_ADDRESS',
  'OMP_NUM_THREADS',
  'OPENBLAS_NUM_THREADS',
  'OPENBLAS_CORETYPE',
  'MKL_NUM_THREADS',
  'CUDA_VISIBLE_DEVICES',
  'CUBLAS_WORKSPACE_CONFIG',
];

/** A snapshot of this machine. `blas` and `gpu` come from the native engine, which alone knows what it loaded. */
export function environment(engine: { blas?: string | null; gpu?: string | null } = {}): Environment {
  const lockfile = path.join(REPO_ROOT, 'package-lock.json');
  return {
    hostname: os.hostname(),
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    release: os.release(),
    cpu: { model: os.cpus()[0]?.model.trim() ?? 'unknown', cores: os.availableParallelism() },
    memoryBytes: os.totalmem(),
    blas: engine.blas ?? null,
    gpu: engine.gpu ?? null,
    lockfile: existsSync(lockfile) ? sha256Hex(readFileSync(lockfile)) : null,
    env: Object.fromEntries(RECORDED_ENV.flatMap((name) => (process.env[name] === undefined ? [] : [[name, process.env[name]!]]))),
  };
}

// ---------------------------------------------------------------------------------------
// Writes

export interface CreateRunInput {
  /** The run id = the Temporal workflow id. */
  id: string;
  recipe: Recipe;
  codeVersion: string;
  environment: Environment;
  parentRunId?: string | null;
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
      insertEvent(tx, { runId: input.id, type: 'run.created', payload: { recipeHash: hash, parentRunId: row.parentRunId } });
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
          finishedAt: TERMINAL_RUN.includes(status) ? now : null,
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
  /** The stage as the parsed recipe has it: gives the id, kind, config and (pretrain) step count. */
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
        finishedAt: TERMINAL_STAGE.includes(status) ? (current?.status === status ? current.finishedAt : now) : null,
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
              steps: stage.kind === 'pretrain' ? stage.steps : null,
              ...patch,
            })
            .returning()
            .get();
      if (current?.status !== status) {
        const payload = defined({ reason: row.reason ?? undefined, error: row.error ?? undefined, attempt: row.attempt });
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

export function recordMetric(db: SieveDb, value: MetricInput): void {
  recordMetrics(db, [value]);
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

export function linkArtifact(db: SieveDb, link: ArtifactLink): void {
  linkArtifacts(db, [link]);
}

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

type Tx = Parameters<Parameters<SieveDb['transaction']>[0]>[0];

function insertEvent(tx: Tx, event: EventInput): EventRow {
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

// ---------------------------------------------------------------------------------------
// Reads

export interface CachedStage {
  runId: string;
  stageId: string;
  finishedAt: Date | null;
  /** What the stage made (not its inputs, not its mid-stage checkpoints), each verified against its hash. */
  artifacts: Array<{ sha256: string; bytes: number; kind: ArtifactKind; role: string; step: number | null; path: string }>;
  /** Its final metrics (step-less values, else the latest step's). */
  metrics: Record<string, number | null>;
  computeMs: number | null;
}

/**
 * The newest completed stage with this cache key whose outputs (everything it made except
 * mid-stage checkpoints) all still exist and hash correctly, or null. Only stages that computed their outputs are candidates (a cached or
 * reused stage points at one that did); a candidate with a missing or corrupt artifact is
 * passed over, so a damaged store means a re-run, never a stale or broken result.
 */
export async function findCachedStage(db: SieveDb, store: ArtifactStore, cacheKey: string): Promise<CachedStage | null> {
  const candidates = db
    .select()
    .from(stages)
    .where(and(eq(stages.cacheKey, cacheKey), eq(stages.status, 'completed'), isNull(stages.reusedFromRunId)))
    .orderBy(desc(stages.finishedAt), desc(sql`${stages}.rowid`))
    .all();
  for (const candidate of candidates) {
    // Mid-stage checkpoints are how a stage resumed, not what it hands on: a finished stage
    // is reusable without them, so they are neither verified nor returned.
    const outputs = stageArtifactRows(db, candidate.runId, candidate.stageId).filter((a) => a.role !== 'input' && a.role !== 'checkpoint');
    try {
      for (const output of outputs) await store.verify(output.sha256);
    } catch (error) {
      if (error instanceof ArtifactMissingError || error instanceof ArtifactCorruptError) continue;
      throw error;
    }
    return {
      runId: candidate.runId,
      stageId: candidate.stageId,
      finishedAt: candidate.finishedAt,
      artifacts: outputs.map((a) => ({ ...a, path: store.path(a.sha256) })),
      metrics: finalMetrics(listMetrics(db, candidate.runId, candidate.stageId)),
      computeMs: candidate.computeMs,
    };
  }
  return null;
}

/**
 * Why a stage is not served from the cache, in words: what changed in its cache basis since
 * the latest finished stage with the same id in a run of the same recipe name. Call it on
 * a cache miss; the answer goes in the stage's `reason`.
 */
export function explainCacheMiss(db: SieveDb, runName: string, stageId: string, basis: StageCacheInput): string {
  const previous = db
    .select({ runId: stages.runId, basis: stages.cacheBasis })
    .from(stages)
    .innerJoin(runs, eq(runs.id, stages.runId))
    .where(
      and(
        eq(runs.name, runName),
        eq(stages.stageId, stageId),
        inArray(stages.status, [...FINISHED_STAGE_STATUSES]),
        isNotNull(stages.cacheBasis),
      ),
    )
    .orderBy(desc(stages.finishedAt), desc(sql`${stages}.rowid`))
    .limit(1)
    .get();
  if (!previous?.basis) return `no finished "${stageId}" stage of an earlier "${runName}" run to reuse`;
  const before = flatten(previous.basis);
  const after = flatten(JSON.parse(canonicalJson(basis)) as unknown);
  const changed = [...new Set([...before.keys(), ...after.keys()])]
    .filter((key) => before.get(key) !== after.get(key))
    .sort();
  if (changed.length === 0) return `same inputs as run ${previous.runId}, whose outputs are missing or corrupt`;
  const shown = changed.slice(0, 5).map((key) => `${key} ${short(before.get(key))} → ${short(after.get(key))}`);
  const more = changed.length > shown.length ? `, and ${changed.length - shown.length} more` : '';
  return `changed since run ${previous.runId}: ${shown.join('; ')}${more}`;
}

/** Leaf values by dotted path, each as canonical JSON text. */
function flatten(value: unknown, prefix = '', into = new Map<string, string>()): Map<string, string> {
  if (value !== null && typeof value === 'object') {
    const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
    if (entries.length === 0) into.set(prefix, canonicalJson(value));
    for (const [key, child] of entries) flatten(child, prefix === '' ? key : `${prefix}.${key}`, into);
  } else {
    into.set(prefix, canonicalJson(value));
  }
  return into;
}

function short(text: string | undefined): string {
  if (text === undefined) return '(absent)';
  return text.length > 24 ? `${text.slice(0, 21)}…` : text;
}

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
    .map((run) => ({
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
    }));
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
  return {
    id: run.id,
    name: run.name,
    status: run.status,
    parentRunId: run.parentRunId,
    recipeHash: run.recipeHash,
    codeVersion: run.codeVersion,
    environment: run.environment,
    createdAt: run.createdAt.toISOString(),
    startedAt: iso(run.startedAt),
    finishedAt: iso(run.finishedAt),
    error: run.error,
    recipe: run.recipe,
    stages: showStages,
  };
}

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

/** The run's journal in order, optionally from a given event id on (for following a run). */
export function listEvents(db: SieveDb, runId: string, afterId = 0): EventRow[] {
  return db
    .select()
    .from(events)
    .where(and(eq(events.runId, runId), sql`${events.id} > ${afterId}`))
    .orderBy(asc(events.id))
    .all();
}

function orderedStages(db: SieveDb, run: RunRow): StageRow[] {
  const rows = db.select().from(stages).where(eq(stages.runId, run.id)).all();
  const order = new Map(run.recipe.stages.map((s, i) => [s.id, i]));
  return rows.sort((a, b) => (order.get(a.stageId) ?? Infinity) - (order.get(b.stageId) ?? Infinity));
}

function stageArtifactRows(db: SieveDb, runId: string, stageId: string) {
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

/** Step-less values win; otherwise the value at the highest step. */
function finalMetrics(rows: readonly MetricRow[]): Record<string, number | null> {
  const best = new Map<string, MetricRow>();
  for (const row of rows) {
    const seen = best.get(row.name);
    if (!seen || (seen.step !== null && (row.step === null || row.step > seen.step))) best.set(row.name, row);
  }
  return Object.fromEntries([...best].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, row]) => [name, row.value]));
}

function iso(date: Date | null): string | null {
  return date === null ? null : date.toISOString();
}

/** The object without its undefined-valued keys, so an update leaves those columns alone. */
function defined<T extends Record<string, unknown>>(object: T): Partial<T> {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined)) as Partial<T>;
}
