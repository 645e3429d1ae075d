// `sieve cancel <run>`: ends a run as cancelled, whatever is left of it, and returns once that is
// recorded. Its running stage keeps its last checkpoint; `sieve resume` continues it later.
//
// Why it does more than ask Temporal (docs/operations.md, "Ctrl-C, cancel, resume"):
// - The workflow records the cancellation in SQLite through its control activities, so something
//   must serve the control queue until the workflow closes. If no live worker does (the `run`
//   that served it was killed or interrupted), this command serves it in-process: the workflow and
//   the control activities only, so no stage resumes training.
// - Compute activities are cancelled with WAIT_CANCELLATION_COMPLETED: the workflow waits for the
//   stage's worker to acknowledge. A worker of this host whose process is gone never will, so this
//   command acknowledges for it. A worker it cannot check (another host) either answers at its next
//   heartbeat or is timed out by Temporal at the heartbeat timeout; the command says how long that
//   can take.
// - A workflow that closed without recording its end (gone from Temporal, terminated, or a stage
//   attempt timed out after the cancellation, which the workflow sees as a failure) leaves SQLite
//   saying "running": the command then records the run as the workflow would have.

import { ActivityNotFoundError, type Client } from '@temporalio/client';
import { controlActivities } from '../../activities/record';
import { createArtifactStore } from '../../activities/store/artifacts';
import { openDb } from '../../activities/store/db';
import type { ShowOutput } from '../../schemas/cli';
import { stageInputs, topologicalOrder, type Recipe } from '../../schemas/recipe';
import { TERMINAL_RUN_STATUSES, type StageStatus } from '../../schemas/records';
import { stageActivityId, TASK_QUEUES } from '../../workflows/contract';
import { getRun } from '../read-models';
import { inspectRun, openTemporal, unservedQueues, workerGone, type PendingStage, type RunState, type TemporalSession } from '../temporal/connect';
import { loadWorkerModule } from './_watch';
import { defineCommand, sieveHome } from './_shared';

const POLL_MS = 250;
/** history.v1 ActivityTaskTimedOutEventAttributes.retryState: the attempt timed out after its cancellation was requested. */
const RETRY_STATE_CANCEL_REQUESTED = 7;

export default defineCommand({
  name: 'cancel',
  description: 'cancel a run or a sweep, served or orphaned (its stages checkpoint and stop; resume continues it)',
  positionals: ['<run|sweep>'],
  options: {},
  async run({ positionals: [runId] }) {
    const home = sieveHome();
    const temporal = (await openTemporal(home, { start: true }))!;
    try {
      if (await isRunningSweep(temporal.client, runId)) return await cancelSweep(home, temporal, runId);
      const state = await inspectRun(temporal.client, runId);
      if (state.kind === 'running') return await cancelRunning(home, temporal, runId, state);
      if (!readRun(home, runId)) {
        if (state.kind === 'closed') throw new Error(`run "${runId}" is not running (its workflow is ${state.status.toLowerCase()}).`);
        throw new Error(`no run "${runId}" in ${home} or in Temporal at ${temporal.address}; \`sieve history\` lists the runs.`);
      }
      return await settleOrphan(home, temporal.client, runId, state.kind === 'gone' ? 'gone from Temporal' : `closed (${state.status.toLowerCase()})`);
    } finally {
      await temporal.close();
    }
  },
});

/** Whether `id` is a sweep workflow (workflows/sweep.ts) that has not closed. */
async function isRunningSweep(client: Client, id: string): Promise<boolean> {
  const desc = await client.workflow
    .getHandle(id)
    .describe()
    .catch(() => null);
  return desc?.type === 'sweep' && desc.status.name === 'RUNNING';
}

/**
 * A sweep: the cancellation goes to the sweep and from it to the runs of its points, each of which
 * records its end. This command serves the control queue meanwhile (a sweep's `sieve run` may be
 * gone), acknowledges for stage workers that are gone, and returns when the sweep has closed.
 */
async function cancelSweep(home: string, temporal: TemporalSession, sweepId: string): Promise<number> {
  const { client } = temporal;
  const children = async () => ((await client.workflow.getHandle(sweepId).describe()).raw.pendingChildren ?? []).map((c) => c.workflowId!).filter(Boolean);
  const running = await children();
  for (const id of [sweepId, ...running]) {
    await client.workflowService.resetStickyTaskQueue({ namespace: client.options.namespace, execution: { workflowId: id } }).catch(() => undefined);
  }
  await client.workflow.getHandle(sweepId).cancel();
  say(`cancellation requested for sweep ${sweepId} and its running runs (${running.join(', ') || 'none'}); serving its control queue until they record their ends.`);
  const workers = await loadWorkerModule().createWorkers({ target: temporal.target, home, queues: [TASK_QUEUES.control] });
  const serving = workers.run();
  try {
    for (const id of running) {
      if ((await awaitClosed(client, id)) === null) return 130;
    }
    if ((await awaitClosed(client, sweepId)) === null) return 130;
  } finally {
    workers.shutdown();
    await serving;
  }
  for (const id of running) {
    const run = readRun(home, id);
    if (run && !TERMINAL_RUN_STATUSES.some((t) => t === run.status)) await settleOrphan(home, client, id, 'closed without recording its end');
  }
  console.log(`sweep ${sweepId} cancelled; \`sieve resume ${sweepId}\` continues it (finished points are kept, partial ones resume from their checkpoints).`);
  return 0;
}

function say(line: string) {
  process.stderr.write(`${line}\n`);
}

async function cancelRunning(home: string, temporal: TemporalSession, runId: string, run: Extract<RunState, { kind: 'running' }>): Promise<number> {
  const { client } = temporal;
  const serveHere = (await unservedQueues(client, run.stages)).includes(TASK_QUEUES.control);
  // The next workflow task would go to the dead worker's sticky queue and wait out its timeout first.
  if (serveHere) await client.workflowService.resetStickyTaskQueue({ namespace: client.options.namespace, execution: { workflowId: runId } });
  await client.workflow.getHandle(runId).cancel();
  let workers = null;
  if (serveHere) {
    say(`no worker serves ${runId}, so sieve cancel serves its control queue (${TASK_QUEUES.control}) until the cancellation is recorded; no stage resumes.`);
    workers = await loadWorkerModule().createWorkers({ target: temporal.target, home, queues: [TASK_QUEUES.control] });
    // A task the dead worker had started is handed on only when it times out.
    if (run.taskTimesOutAtMs !== null) say(`the worker that died had a task of ${runId} in hand; Temporal hands it on when it times out, in up to ${secondsUntil(run.taskTimesOutAtMs)} s.`);
  } else {
    say(`cancellation requested for ${runId}; waiting for its stages to checkpoint and stop.`);
  }
  const serving = workers?.run();
  let status: string | null;
  try {
    status = await awaitClosed(client, runId);
  } finally {
    workers?.shutdown();
    await serving;
  }
  if (status === null) {
    say(`stopped waiting; the cancellation of ${runId} stays requested, and \`sieve cancel ${runId}\` again sees it through.`);
    return 130;
  }
  if (status !== 'CANCELLED') throw new Error(`run ${runId} ended ${status.toLowerCase()} before the cancellation took effect.`);
  const recorded = readRun(home, runId);
  // Recorded elsewhere (a control host with another SIEVE_HOME), or by the workflow itself: done.
  if (!recorded || TERMINAL_RUN_STATUSES.some((s) => s === recorded.status)) return report(home, runId);
  return settleOrphan(home, client, runId, 'closed without recording its end');
}

/**
 * Polls the workflow until it closes; returns its status, or null on Ctrl-C. Acknowledges the
 * cancellation of each stage whose worker is gone, and says how long the others may take.
 */
async function awaitClosed(client: Client, runId: string): Promise<string | null> {
  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  const told = new Set<string>();
  try {
    for (;;) {
      const state = await inspectRun(client, runId);
      if (state.kind === 'closed') return state.status;
      if (state.kind === 'gone') throw new Error(`the workflow of ${runId} vanished from Temporal while it was being cancelled; \`sieve cancel ${runId}\` again records it as cancelled.`);
      for (const stage of state.stages.filter((s) => s.state === 'cancel-requested')) {
        if (workerGone(stage.worker)) await acknowledgeFor(client, runId, stage);
        else if (!told.has(stage.activityId)) say(waitingFor(stage));
        told.add(stage.activityId);
      }
      if (interrupted) return null;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
  }
}

/** What Temporal would otherwise only learn at the heartbeat timeout: the attempt's worker is gone. */
async function acknowledgeFor(client: Client, runId: string, stage: PendingStage) {
  try {
    await client.activity.reportCancellation({ workflowId: runId, activityId: stage.activityId }, null);
  } catch (err) {
    // Ended meanwhile (timed out, or acknowledged by a previous poll): nothing left to acknowledge.
    if (!(err instanceof ActivityNotFoundError)) throw err;
    return;
  }
  say(`stage ${stage.stageId}'s worker (${stage.worker}) is gone; acknowledged the cancellation for it.`);
}

function waitingFor(stage: PendingStage): string {
  const { heartbeatTimeoutMs, lastSignOfLifeMs } = stage;
  const who = `stage ${stage.stageId}'s worker (${stage.worker || 'unknown'})`;
  if (heartbeatTimeoutMs === null || lastSignOfLifeMs === null) return `waiting for ${who} to acknowledge the cancellation.`;
  return `waiting up to ${secondsUntil(lastSignOfLifeMs + heartbeatTimeoutMs)} s for ${who} to acknowledge the cancellation; if it is gone, Temporal ends the attempt at its heartbeat timeout (${heartbeatTimeoutMs / 1000} s).`;
}

function secondsUntil(ms: number): number {
  return Math.max(0, Math.ceil((ms - Date.now()) / 1000));
}

/** The workflow will record nothing more about the run: record it as cancelled here, then report. */
async function settleOrphan(home: string, client: Client, runId: string, why: string): Promise<number> {
  const recorded = readRun(home, runId)!;
  if (TERMINAL_RUN_STATUSES.some((s) => s === recorded.status)) throw new Error(`run ${runId} is not running (it is ${recorded.status}).`);
  await recordCancelled(home, recorded, await stagesCancelledByTimeout(client, runId));
  say(`the workflow of ${runId} is ${why}, so sieve cancel recorded the run as cancelled in ${home}.`);
  return report(home, runId);
}

/**
 * Stages whose attempt Temporal timed out after the cancellation was requested (their worker was
 * gone): cancelled, though the workflow saw a heartbeat timeout. None when the workflow is gone.
 */
async function stagesCancelledByTimeout(client: Client, runId: string): Promise<Set<string>> {
  const history = await client.workflow
    .getHandle(runId)
    .fetchHistory()
    .catch(() => null);
  const activityOf = new Map<string, string>();
  const stages = new Set<string>();
  const prefix = stageActivityId('');
  for (const e of history?.events ?? []) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled?.activityId) activityOf.set(String(e.eventId), scheduled.activityId);
    const timedOut = e.activityTaskTimedOutEventAttributes;
    if (timedOut?.retryState !== RETRY_STATE_CANCEL_REQUESTED) continue;
    const activityId = activityOf.get(String(timedOut.scheduledEventId));
    if (activityId?.startsWith(prefix)) stages.add(activityId.slice(prefix.length));
  }
  return stages;
}

const UNENDED: ReadonlySet<StageStatus> = new Set(['pending', 'running']);

/**
 * Records the run as the workflow records a cancelled run, through the same control activities:
 * stages that had not ended, or whose attempt the cancellation ended, are cancelled, and so are
 * the stages skipped because of them; the others keep what they recorded (finished stages their
 * outputs, a partial stage its checkpoints).
 */
async function recordCancelled(home: string, run: ShowOutput, cancelledAttempts: Set<string>) {
  const { db, close } = openDb({ home });
  try {
    const control = controlActivities({ db, store: createArtifactStore(home) });
    const status = new Map<string, StageStatus>(run.stages.map((s) => [s.id, s.status]));
    for (const stage of topologicalOrder(run.recipe as Recipe)) {
      const now = status.get(stage.id) ?? 'pending';
      const byCancellation = UNENDED.has(now) || cancelledAttempts.has(stage.id) || (now === 'skipped' && stageInputs(stage).some((id) => status.get(id) === 'cancelled'));
      if (!byCancellation) continue;
      await control.recordStageEnd({ runId: run.id, stageId: stage.id, status: 'cancelled', error: null });
      status.set(stage.id, 'cancelled');
    }
    await control.finishRun({ runId: run.id, status: 'cancelled', error: null });
  } finally {
    close();
  }
}

function readRun(home: string, runId: string): ShowOutput | null {
  const { db, close } = openDb({ home });
  try {
    return getRun(db, createArtifactStore(home), runId);
  } finally {
    close();
  }
}

/** One line on stdout: how the run ended and where its partial stages stopped. */
function report(home: string, runId: string): number {
  const run = readRun(home, runId);
  const stopped = (run?.stages ?? [])
    .filter((s) => s.status === 'cancelled')
    .flatMap((s) => {
      const steps = s.artifacts.filter((a) => a.role === 'checkpoint' && a.step !== null).map((a) => a.step!);
      return steps.length ? [`stage ${s.id} keeps its checkpoint of step ${Math.max(...steps)}`] : [];
    });
  const resume = run ? `; \`sieve resume ${runId}\` continues it` : '';
  console.log(`run ${runId} cancelled${stopped.length ? `; ${stopped.join(', ')}` : ''}${resume}.`);
  return 0;
}
