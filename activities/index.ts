// The activities a worker registers, built from their dependencies (the dependency-injection shape
// of the Temporal samples): control activities for the `sieve` queue, and one compute activity per
// stage kind, named after the kind, for `cpu` / `gpu`.

import os from 'node:os';
import { backendInfo, type Backend, type Device } from '../kernels';
import type { ComputeResult, StageTask } from '../schemas/pipeline';
import { memoryShortfall, STAGE_KINDS, type StageKind } from '../schemas/stages';
import { findStage, type ComputeDeps } from './compute';
import { attachAttempt, classifyStageFailure, resourceExhausted } from './failures';
import { controlActivities } from './record';
import { currentStageContext, type StageContext } from './stage-context';
import { STAGE_RUNS } from './stages';
import { createArtifactStore } from './store/artifacts';
import { explainDatabaseFailure, openDb, type SieveDatabase } from './store/db';
import { environment } from './store/provenance';

/**
 * Control activities over SIEVE_HOME's database and artifact store. Each first checks that the
 * database file is still the one opened (a deleted file would swallow every write), and a
 * database failure no retry can fix (read-only, full, corrupt) fails with the file named.
 */
export function createControlActivities(opts: { home: string }) {
  const handle = openDb({ home: opts.home });
  return guardDatabase(handle, controlActivities({ db: handle.db, store: createArtifactStore(opts.home) }));
}

function guardDatabase<A extends Record<string, (...args: never[]) => Promise<unknown>>>(handle: SieveDatabase, activities: A): A {
  const guarded = Object.entries(activities).map(([name, activity]) => [
    name,
    async (...args: never[]) => {
      handle.checkFile();
      try {
        return await activity(...args);
      } catch (error) {
        throw explainDatabaseFailure(handle.file, error);
      }
    },
  ]);
  return Object.fromEntries(guarded) as A;
}

export type ComputeActivity = (task: StageTask) => Promise<ComputeResult>;

/**
 * One stage of `kind` with the context it sees of Temporal: what every compute activity runs, and
 * what a driver without Temporal (bench/gpu/drive.ts, on a GPU machine with no server) runs with a
 * local context.
 */
export async function computeStage<K extends StageKind>(deps: ComputeDeps, ctx: StageContext, task: StageTask, kind: K): Promise<ComputeResult> {
  const stage = findStage(task, kind);
  try {
    // A stage that cannot fit is refused before anything is allocated (validate checks the same).
    const threads = deps.threads ?? backendInfo(task.recipe.device).threads;
    const shortfall = memoryShortfall(stage, task.recipe, { threads, memoryBytes: os.totalmem() });
    if (shortfall) throw resourceExhausted(`${shortfall}; run it on a larger machine or shrink it`);
    const output = await STAGE_RUNS[kind](deps, ctx, task, stage);
    return { output, attempt: ctx.attempt, environment: environment(loadedEngine(task.recipe.device)) };
  } catch (error) {
    throw attachAttempt(classifyStageFailure(error, { home: deps.store.home }), ctx.attempt);
  }
}

/**
 * What the engine loaded for a stage on `device`, for its environment record: the CPU's BLAS (every
 * stage's host side) and, on cuda, the GPU backend's description (GPU, CUDA runtime, cuBLASLt,
 * cuSPARSELt), so that `sieve reproduce` names a changed GPU or library as a cause.
 */
export function loadedEngine(device: Device, info: (device: Device) => Backend = backendInfo): { blas: string | null; gpu: string | null } {
  return { blas: info('cpu').blas, gpu: device === 'cuda' ? info('cuda').blas : null };
}

/** Compute activities: one per stage kind. */
export function createComputeActivities(opts: { home: string; threads?: number | null }): Record<StageKind, ComputeActivity> {
  const deps: ComputeDeps = { store: createArtifactStore(opts.home), threads: opts.threads ?? null };
  const activity =
    (kind: StageKind): ComputeActivity =>
    (task) =>
      computeStage(deps, currentStageContext(), task, kind);
  return Object.fromEntries(STAGE_KINDS.map((kind) => [kind, activity(kind)])) as Record<StageKind, ComputeActivity>;
}
