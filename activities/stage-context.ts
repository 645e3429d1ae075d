// What a compute stage sees of Temporal: heartbeats (progress and the latest checkpoint), the
// checkpoint a previous attempt reported, cancellation, and the `checkpointSaved` signal that
// lets the workflow record checkpoints as they land. Kept apart so stage code reads as plain
// training code.

import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { CheckpointRef, Heartbeat } from '../schemas/pipeline';
import { checkpointSaved, progressQuery } from '../workflows/contract';

export interface StageContext {
  readonly attempt: number;
  /** The checkpoint named by this activity's last heartbeat before a retry, if any. */
  readonly lastHeartbeatCheckpoint: CheckpointRef | null;
  /**
   * The newest checkpoint of `stageId` the workflow has been told of (by `reportCheckpoint`), or
   * null if the workflow cannot be asked. Heartbeats are throttled, so after a crash this can be
   * newer than the last heartbeat's.
   */
  reportedCheckpoint(stageId: string): Promise<CheckpointRef | null>;
  heartbeat(details: Heartbeat): void;
  isCancelled(): boolean;
  /** Runs `fn` once when cancellation arrives (e.g. to interrupt a native call). */
  onCancel(fn: () => void): void;
  /** Throws the cancellation Temporal delivered, so the attempt ends as cancelled. */
  throwCancelled(): never;
  /** Tells the workflow a checkpoint exists, so SQLite records it even if the stage never ends. */
  reportCheckpoint(ref: CheckpointRef): Promise<void>;
}

const QUERY_TIMEOUT_MS = 10_000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

export function currentStageContext(): StageContext {
  const ctx = Context.current();
  const info = ctx.info;
  let failure: unknown = null;
  ctx.cancelled.catch((err: unknown) => {
    failure = err;
  });
  const previous = Heartbeat.safeParse(info.heartbeatDetails);
  const workflow = () => {
    const workflowId = info.workflowExecution?.workflowId;
    if (!workflowId) throw new Error('a compute stage must run as an activity of a pipeline workflow');
    return ctx.client.workflow.getHandle(workflowId);
  };
  return {
    attempt: info.attempt,
    lastHeartbeatCheckpoint: previous.success ? previous.data.checkpoint : null,
    heartbeat: (details) => ctx.heartbeat(details),
    isCancelled: () => failure !== null || ctx.cancellationSignal.aborted,
    onCancel: (fn) => ctx.cancellationSignal.addEventListener('abort', fn, { once: true }),
    throwCancelled: () => {
      throw failure ?? new CancelledFailure('CANCELLED');
    },
    reportCheckpoint: async (ref) => {
      await workflow().signal(checkpointSaved, CheckpointRef.parse(ref));
    },
    reportedCheckpoint: async (stageId) => {
      // The query needs the control worker; if it is not answering, the heartbeat has to do.
      const stages = await Promise.race([workflow().query(progressQuery), sleep(QUERY_TIMEOUT_MS).then(() => null)]).catch(() => null);
      return stages?.find((s) => s.id === stageId)?.checkpoint ?? null;
    },
  };
}
