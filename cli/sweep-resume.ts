// `sieve resume <sweep>`: continues a sweep that was cancelled or failed, as a new sweep
// (`<sweep>-r1`, …) over the same grid. Each point (and the shared run) continues from its run in
// the old sweep as `sieve resume` continues a run: finished stages are taken as they are, a partial
// stage resumes from its checkpoints; a point that never started starts now. The grid is read back
// from the old sweep's workflow input in Temporal.

import { defaultPayloadConverter } from '@temporalio/common';
import { createArtifactStore } from '../activities/store/artifacts';
import type { SieveDb } from '../activities/store/db';
import type { ResumePlan } from '../schemas/pipeline';
import type { SweepInput } from '../workflows/contract';
import { getRun } from './read-models';
import { resumePlan } from './resume-plan';
import type { TemporalSession } from './temporal/connect';

/** The input the sweep workflow `sweepId` was started with, or null when Temporal has no such sweep. */
export async function sweepInputOf(temporal: TemporalSession, sweepId: string): Promise<{ input: SweepInput; status: string } | null> {
  const handle = temporal.client.workflow.getHandle(sweepId);
  const desc = await handle.describe().catch(() => null);
  if (!desc || desc.type !== 'sweep') return null;
  const history = await handle.fetchHistory();
  const payload = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
  if (!payload) throw new Error(`the history of sweep ${sweepId} has no input`);
  return { input: defaultPayloadConverter.fromPayload<SweepInput>(payload), status: desc.status.name };
}

/** The continuation of `old` as sweep `newId`: every run of it resumed from the old one's records. */
export function continuedSweep(db: SieveDb, home: string, old: SweepInput, newId: string): SweepInput {
  const store = createArtifactStore(home);
  const planOf = (runId: string): ResumePlan | null => {
    const run = getRun(db, store, runId);
    return run ? resumePlan(run) : null;
  };
  return {
    ...old,
    sweepId: newId,
    shared: old.shared ? { runId: `${newId}-shared`, recipe: old.shared.recipe, resume: planOf(old.shared.runId) } : null,
    points: old.points.map((p) => ({ ...p, runId: `${newId}-p${p.point.index}`, resume: planOf(p.runId) })),
  };
}
