// What `sieve reproduce` reports: for each stage the reproduction computed, whether its outputs
// are the bytes the original run recorded, and, where they are not, what was not the same between
// the two computations — the code version, the data the stage read, its inputs (an upstream stage
// that did not reproduce), the machine — read from the records of both.
//
// The original side is the stage that computed the outputs: a stage the original run took from the
// cache (or from the run it resumed) is compared with the stage it took them from. On CPU the
// engine promises the same bits for the same inputs at any thread count (docs/kernels.md), so
// anything but bit-identical outputs is reported; there is no tolerance to apply.
import { and, eq } from 'drizzle-orm';
import type { ReproduceOutput } from '../schemas/cli';
import type { Environment } from '../schemas/records';
import { runs, stages } from '../schemas/tables';
import type { SieveDb } from '../activities/store/db';
import { NOT_OUTPUT_ROLES, stageArtifactRows } from '../activities/store/reads';

interface Computed {
  runId: string;
  stageId: string;
  codeVersion: string;
  basis: { dataHash?: string; inputs?: string[] } | null;
  environment: Environment | null;
  outputs: Map<string, string>;
}

/** The stage that computed what `runId`'s stage recorded (following cache and reuse links). */
function computedBy(db: SieveDb, runId: string, stageId: string): Computed {
  let at = { runId, stageId };
  for (let hops = 0; hops < 1000; hops++) {
    const row = db.select().from(stages).where(and(eq(stages.runId, at.runId), eq(stages.stageId, at.stageId))).get();
    if (!row) throw new Error(`no stage ${at.stageId} in run ${at.runId}`);
    if (row.reusedFromRunId && row.reusedFromStageId) {
      at = { runId: row.reusedFromRunId, stageId: row.reusedFromStageId };
      continue;
    }
    const run = db.select({ codeVersion: runs.codeVersion }).from(runs).where(eq(runs.id, at.runId)).get()!;
    const outputs = new Map<string, string>();
    for (const a of stageArtifactRows(db, at.runId, at.stageId)) if (!NOT_OUTPUT_ROLES.has(a.role)) outputs.set(a.role, a.sha256);
    return { ...at, codeVersion: run.codeVersion, basis: row.cacheBasis as Computed['basis'], environment: row.environment, outputs };
  }
  throw new Error(`stage ${stageId} of run ${runId}: its cache links go round in a circle`);
}

/** The machine fields that differ between two environments, as `field: a → b`. */
function machineChanges(a: Environment | null, b: Environment | null): string[] {
  if (!a || !b) return [];
  const fields: [string, unknown, unknown][] = [
    ['host', a.hostname, b.hostname],
    ['cpu', `${a.cpu.model} × ${a.cpu.cores}`, `${b.cpu.model} × ${b.cpu.cores}`],
    ['BLAS', a.blas, b.blas],
    ['GPU', a.gpu, b.gpu],
    ['node', a.node, b.node],
    ['platform', `${a.platform}/${a.arch}`, `${b.platform}/${b.arch}`],
    ['dependencies (package-lock.json)', a.lockfile, b.lockfile],
    ['environment variables', JSON.stringify(a.env), JSON.stringify(b.env)],
  ];
  return fields.filter(([, x, y]) => x !== y).map(([name, x, y]) => `${name}: ${String(x)} → ${String(y)}`);
}

/** The reproduction `reproducedId` of `originalId`, stage by stage over `stageIds`. */
export function compareReproduction(db: SieveDb, originalId: string, reproducedId: string, stageIds: readonly string[]): ReproduceOutput {
  const compared = stageIds.map((id) => {
    const before = computedBy(db, originalId, id);
    const after = computedBy(db, reproducedId, id);
    const roles = [...new Set([...before.outputs.keys(), ...after.outputs.keys()])].sort();
    const differs = roles
      .filter((role) => before.outputs.get(role) !== after.outputs.get(role))
      .map((role) => ({ role, original: before.outputs.get(role) ?? null, reproduced: after.outputs.get(role) ?? null }));
    const causes: string[] = [];
    if (before.codeVersion !== after.codeVersion) causes.push(`code version: ${before.codeVersion} → ${after.codeVersion}`);
    if (before.basis?.dataHash !== after.basis?.dataHash) causes.push(`the data it read: ${before.basis?.dataHash ?? 'unknown'} → ${after.basis?.dataHash ?? 'unknown'}`);
    if (JSON.stringify(before.basis?.inputs) !== JSON.stringify(after.basis?.inputs)) causes.push('its inputs (an upstream stage did not reproduce)');
    causes.push(...machineChanges(before.environment, after.environment).map((c) => `machine, ${c}`));
    return { id, original: { runId: before.runId, stageId: before.stageId }, identical: differs.length === 0, differs, causes };
  });
  return { id: reproducedId, reproduces: originalId, identical: compared.every((s) => s.identical), stages: compared };
}
