// The activities a worker registers, built from their dependencies (the dependency-injection shape
// of the Temporal samples): control activities for the `sieve` queue, compute for `cpu` / `gpu`.

import { Model } from '../kernels';
import type { ComputeResult, StageOutput, StageTask } from '../schemas/pipeline';
import type { ComputeDeps } from './compute';
import { evaluate } from './evaluate';
import { pretrain } from './pretrain';
import { controlActivities } from './record';
import { currentStageContext, type StageContext } from './stage-context';
import { createArtifactStore } from './store/artifacts';
import { openDb } from './store/db';
import { environment } from './store/records';

/** Control activities over SIEVE_HOME's database and artifact store. */
export function createControlActivities(opts: { home: string }) {
  const { db } = openDb({ home: opts.home });
  return controlActivities({ db, store: createArtifactStore(opts.home) });
}

/** Compute activities: one per stage kind that does work. */
export function createComputeActivities(opts: { home: string; threads?: number | null }) {
  const deps: ComputeDeps = { store: createArtifactStore(opts.home), threads: opts.threads ?? null };
  type Stage = (deps: ComputeDeps, ctx: StageContext, task: StageTask) => Promise<StageOutput>;
  const activity =
    (stage: Stage) =>
    async (task: StageTask): Promise<ComputeResult> => {
      const ctx = currentStageContext();
      const output = await stage(deps, ctx, task);
      return { output, attempt: ctx.attempt, environment: environment({ blas: Model.backend.blas }) };
    };
  return { pretrain: activity(pretrain), evaluate: activity(evaluate) };
}
