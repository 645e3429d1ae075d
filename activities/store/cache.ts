// The stage cache: a stage whose cache key (kind, resolved config, input artifact hashes, data
// hash, code version) equals that of a finished stage takes that stage's outputs instead of
// computing them, once every output is verified against its hash. A miss is explained in words:
// what changed since the latest run of the same recipe name.
import { and, desc, eq, inArray, isNotNull, isNull, sql } from 'drizzle-orm';
import { canonicalJson } from '../../schemas/canonical';
import { FINISHED_STAGE_STATUSES, type ArtifactKind } from '../../schemas/records';
import { runs, stages } from '../../schemas/tables';
import { ArtifactCorruptError, ArtifactMissingError, type ArtifactStore } from './artifacts';
import type { SieveDb } from './db';
import { sha256Hex } from './hash';
import { HISTORY_SEGMENT_ROLE } from './prune';
import { finalMetrics, listMetrics, stageArtifactRows } from './reads';

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
    // Mid-stage checkpoints and their history segments are how a stage resumed, not what it
    // hands on: a finished stage is reusable without them, so they are neither verified nor returned.
    const outputs = stageArtifactRows(db, candidate.runId, candidate.stageId).filter(
      (a) => a.role !== 'input' && a.role !== 'checkpoint' && a.role !== HISTORY_SEGMENT_ROLE,
    );
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
