// A stage's seal: what it produced, as recorded when it completed (or was served from the cache or
// a resumed run), written into the journal event of that change of status. The journal is
// hash-chained, so a metric or artifact link edited afterwards no longer matches its seal, and
// `sieve verify` says which (./verify.ts).
import { and, asc, eq } from 'drizzle-orm';
import { canonicalJson } from '../../schemas/canonical';
import { metrics } from '../../schemas/tables';
import type { SieveDb } from './db';
import { sha256Hex } from './hash';

export interface StageSeal {
  /** The stage's metric rows (final and per step): how many, and the sha256 of their canonical list. */
  metrics: { count: number; sha256: string };
  /** The artifacts it produced, by role, sorted. */
  artifacts: { role: string; sha256: string }[];
}

/** The seal of a stage's outputs as the database holds them now. */
export function stageSeal(db: SieveDb, runId: string, stageId: string, outputs: readonly { role: string; sha256: string }[]): StageSeal {
  return {
    metrics: metricsDigest(db, runId, stageId),
    artifacts: outputs.map(({ role, sha256 }) => ({ role, sha256 })).sort((a, b) => a.role.localeCompare(b.role) || a.sha256.localeCompare(b.sha256)),
  };
}

/** The stage's metric rows as [name, step, value, protocol hash], in (name, step) order, hashed. */
export function metricsDigest(db: SieveDb, runId: string, stageId: string): StageSeal['metrics'] {
  const rows = db
    .select({ name: metrics.name, step: metrics.step, value: metrics.value, protocolHash: metrics.protocolHash })
    .from(metrics)
    .where(and(eq(metrics.runId, runId), eq(metrics.stageId, stageId)))
    .orderBy(asc(metrics.name), asc(metrics.step))
    .all();
  return { count: rows.length, sha256: sha256Hex(canonicalJson(rows.map((r) => [r.name, r.step, r.value, r.protocolHash]))) };
}
