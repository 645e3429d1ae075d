// The activities a worker registers, built from their dependencies (the dependency-injection shape
// of the Temporal samples): control activities for the `sieve` queue, compute for `cpu` / `gpu`.

import { evaluate } from './evaluate';
import { pretrain } from './pretrain';
import { controlActivities } from './record';
import { currentStageContext } from './stage-context';
import { createArtifactStore } from './store/artifacts';
import { openDb } from './store/db';
import type { StageTask } from '../schemas/pipeline';

/** Control activities over SIEVE_HOME's database and artifact store. */
export function createControlActivities(opts: { home: string }) {
  const { db } = openDb({ home: opts.home });
  return controlActivities({ db, store: createArtifactStore(opts.home) });
}

/** Compute activities: one per stage kind that does work. */
export function createComputeActivities(opts: { home: string; threads?: number | null }) {
  const deps = { store: createArtifactStore(opts.home), threads: opts.threads ?? null };
  return {
    pretrain: (task: StageTask) => pretrain(deps, currentStageContext(), task),
    evaluate: (task: StageTask) => evaluate(deps, currentStageContext(), task),
  };
}
