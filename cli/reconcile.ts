// Runs that SQLite still records as unfinished although their workflow has closed, or vanished,
// in Temporal: a full disk, or a database that could not be written, kept the workflow from
// recording its own end. Temporal knows how it ended; this writes that end, so every run and
// stage reaches a final status once the database can be written again (journaled as
// `run.reconciled`, with Temporal's reason).
import type { Client } from '@temporalio/client';
import { createArtifactStore, type ArtifactStore } from '../activities/store/artifacts';
import { openDb, type SieveDb } from '../activities/store/db';
import { appendEvent } from '../activities/store/journal';
import { setRunStatus, upsertStage } from '../activities/store/writes';
import type { StageProgress } from '../schemas/pipeline';
import { TERMINAL_STAGE_STATUSES, type RunStatus, type StageStatus } from '../schemas/records';
import type { PipelineResult } from '../workflows/contract';
import { getRun, listRuns } from './read-models';

export interface Reconciled {
  id: string;
  status: RunStatus;
  reason: string;
}

type Ending = { status: RunStatus; reason: string; stages: StageProgress[] | null; failures: Map<string, StageFailure> };

/** A stage's compute activity as it failed last, from the workflow's history. */
type StageFailure = { error: string; attempt: number };

/**
 * Each stage's last failed compute attempt in the workflow's history (stage id → its message and
 * attempt). When the disk is full the workflow cannot record why its stage failed, and fails
 * itself on that write; the history still holds the stage's own error.
 */
async function stageFailures(client: Client, runId: string): Promise<Map<string, StageFailure>> {
  const { events } = await client.workflow.getHandle(runId).fetchHistory();
  // required here, as the Temporal client is: the contract loads the workflow SDK
  const { stageActivityId } = require('../workflows/contract') as typeof import('../workflows/contract');
  const prefix = stageActivityId('');
  const stageOf = new Map<string, string>();
  const attemptOf = new Map<string, number>();
  const failures = new Map<string, StageFailure>();
  for (const event of events ?? []) {
    const id = String(event.eventId);
    const scheduled = event.activityTaskScheduledEventAttributes;
    if (scheduled?.activityId?.startsWith(prefix)) stageOf.set(id, scheduled.activityId.slice(prefix.length));
    const started = event.activityTaskStartedEventAttributes;
    if (started) attemptOf.set(String(started.scheduledEventId), started.attempt ?? 1);
    const failed = event.activityTaskFailedEventAttributes;
    const stageId = failed && stageOf.get(String(failed.scheduledEventId));
    if (failed && stageId) failures.set(stageId, { error: failed.failure?.message ?? 'its compute activity failed', attempt: attemptOf.get(String(failed.scheduledEventId)) ?? 1 });
  }
  return failures;
}

/** How the run's workflow ended, or null while it is still running. */
async function ending(client: Client, runId: string): Promise<Ending | null> {
  const handle = client.workflow.getHandle(runId);
  const described = await handle.describe().catch((err: Error) => err);
  if (described instanceof Error) {
    if (described.name !== 'WorkflowNotFoundError') throw described;
    return { status: 'failed', reason: 'its workflow is no longer in Temporal (the server store was reset, or its retention passed)', stages: null, failures: new Map() };
  }
  const state = described.status.name;
  if (state === 'RUNNING') return null;
  if (state === 'COMPLETED') {
    const result = (await handle.result()) as PipelineResult;
    return { status: result.status, reason: 'its workflow completed without recording its end', stages: result.stages, failures: new Map() };
  }
  if (state === 'CANCELLED') return { status: 'cancelled', reason: 'its workflow was cancelled', stages: null, failures: new Map() };
  const error = await handle.result().then(
    () => null,
    (e: unknown) => e,
  );
  let inner = error;
  while (inner instanceof Error && inner.cause instanceof Error) inner = inner.cause;
  const why = inner instanceof Error ? `: ${inner.message}` : '';
  return { status: 'failed', reason: `its workflow ${state.toLowerCase().replace('_', ' ')}${why}`, stages: null, failures: await stageFailures(client, runId) };
}

/** The runs the database still has unfinished: the only ones Temporal can say more about. */
function unfinishedRuns(db: SieveDb) {
  return [...listRuns(db, { status: 'running', limit: 10_000 }), ...listRuns(db, { status: 'pending', limit: 10_000 })];
}

/** Brings every unfinished run of the database in line with how Temporal says it ended. */
export async function reconcileRuns(db: SieveDb, store: ArtifactStore, client: Client): Promise<Reconciled[]> {
  const done: Reconciled[] = [];
  for (const { id } of unfinishedRuns(db)) {
    const end = await ending(client, id);
    if (!end) continue;
    const run = getRun(db, store, id)!;
    for (const stage of run.recipe.stages) {
      const recorded = run.stages.find((s) => s.id === stage.id)?.status;
      if (recorded && (TERMINAL_STAGE_STATUSES as readonly StageStatus[]).includes(recorded)) continue;
      const reported = end.stages?.find((s) => s.id === stage.id);
      const failure = end.failures.get(stage.id);
      const status: StageStatus = reported && reported.status !== 'pending' && reported.status !== 'running' ? reported.status : end.status === 'cancelled' ? 'cancelled' : 'failed';
      const error = reported?.error ?? failure?.error ?? (status === 'failed' ? `the run ended before this stage did: ${end.reason}` : null);
      upsertStage(db, { runId: id, stage, status, error, attempt: failure?.attempt });
    }
    appendEvent(db, { runId: id, type: 'run.reconciled', payload: { status: end.status, reason: end.reason } });
    setRunStatus(db, id, end.status, end.status === 'failed' ? end.reason : null);
    done.push({ id, status: end.status, reason: end.reason });
  }
  return done;
}

/**
 * Reconciles SIEVE_HOME's unfinished runs through `client`, or through the embedded server when
 * it is up (a read-only command does not start one just for this); reports each on stderr.
 */
export async function reconcileHome(home: string, client: Client | null = null): Promise<Reconciled[]> {
  const { db, close } = openDb({ home });
  try {
    // Mostly every run has ended, and then the Temporal client is not even loaded: it was half
    // of `sieve history`'s start-up.
    if (unfinishedRuns(db).length === 0) return [];
    const { openTemporal } = require('./temporal/connect') as typeof import('./temporal/connect');
    const temporal = client ? null : await openTemporal(home, { start: false }).catch(() => null);
    const using = client ?? temporal?.client;
    if (!using) return [];
    try {
      const done = await reconcileRuns(db, createArtifactStore(home), using);
      for (const r of done) console.error(`sieve: run ${r.id} is recorded ${r.status} now: ${r.reason}.`);
      return done;
    } finally {
      await temporal?.close();
    }
  } finally {
    close();
  }
}
