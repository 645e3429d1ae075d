// The activities a worker registers, built from their dependencies (the dependency-injection shape
// of the Temporal samples): control activities for the `sieve` queue, and one compute activity per
// stage kind, named after the kind, for `cpu` / `gpu`.

import { backendInfo } from '../kernels';
import type { ComputeResult, StageTask } from '../schemas/pipeline';
import { STAGE_KINDS, type StageKind } from '../schemas/stages';
import { findStage, type ComputeDeps } from './compute';
import { controlActivities } from './record';
import { currentStageContext } from './stage-context';
import { STAGE_RUNS } from './stages';
import { createArtifactStore } from './store/artifacts';
import { openDb } from './store/db';
import { environment } from './store/provenance';

/** Control activities over SIEVE_HOME's database and artifact store. */
export function createControlActivities(opts: { home: string }) {
  const { db } = openDb({ home: opts.home });
  return controlActivities({ db, store: createArtifactStore(opts.home) });
}

export type ComputeActivity = (task: StageTask) => Promise<ComputeResult>;

/** Compute activities: one per stage kind. */
export function createComputeActivities(opts: { home: string; threads?: number | null }): Record<StageKind, ComputeActivity> {
  const deps: ComputeDeps = { store: createArtifactStore(opts.home), threads: opts.threads ?? null };
  const activity =
    <K extends StageKind>(kind: K): ComputeActivity =>
    async (task) => {
      const ctx = currentStageContext();
      const output = await STAGE_RUNS[kind](deps, ctx, task, findStage(task, kind));
      return { output, attempt: ctx.attempt, environment: environment({ blas: backendInfo(task.recipe.device).blas }) };
    };
  return Object.fromEntries(STAGE_KINDS.map((kind) => [kind, activity(kind)])) as Record<StageKind, ComputeActivity>;
}
