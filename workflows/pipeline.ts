// The pipeline workflow: interprets a validated recipe as a DAG of stages. One execution per run
// (workflow id = run id). Each stage is: a control activity that decides whether the stage must run
// (stage cache, `sieve resume`), a compute activity on the recipe's device queue, and a control
// activity that records the result. Independent branches run in parallel; a failed stage skips its
// dependants while the other branches finish. Only artifact references cross this boundary.
//
// Deterministic code only: no I/O, no clocks, no imports beyond zod schemas and the Temporal API.

import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  CancelledFailure,
  allHandlersFinished,
  condition,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
} from '@temporalio/workflow';
import type { createComputeActivities, createControlActivities } from '../activities';
import { checkpointCandidates, mergeCheckpoints, type CheckpointRef, type RunOptions, type StageOutput, type StageProgress } from '../schemas/pipeline';
import type { Recipe, RecipeStage } from '../schemas/recipe';
import { stageInputs, topologicalOrder } from '../schemas/recipe';
import { definitionOf } from '../schemas/stages';
import {
  checkpointSaved,
  computeQueue,
  NON_RETRYABLE,
  progressQuery,
  stageActivityId,
  TASK_QUEUES,
  type PipelineInput,
  type PipelineResult,
} from './contract';

type Control = ReturnType<typeof createControlActivities>;
type Compute = ReturnType<typeof createComputeActivities>;

const control = proxyActivities<Control>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
});

/**
 * Runs started before this patch cancelled compute activities with TRY_CANCEL: the stage was
 * recorded `cancelled` while the activity was still writing its last checkpoint. Runs since wait
 * for the activity to finish cancelling, so that checkpoint is recorded first.
 */
const WAIT_FOR_CANCELLED_STAGES = 'wait-for-cancelled-stages';

/**
 * Runs since this patch record their end even when the run's cancellation arrives as a stage's
 * timeout (a dead worker never acknowledges it) or after the last stage ended; before it, both
 * left the run `running` in SQLite.
 */
const RECORD_ENDS_DESPITE_CANCEL = 'record-ends-despite-cancel';

/**
 * Runs started before this patch recorded a reported checkpoint only when it was newer than every
 * one known. A stage that falls back from a corrupt checkpoint writes older steps again, and those
 * must be recorded too (pruning and `sieve resume` read SQLite), so runs since record every
 * checkpoint they have not seen.
 */
const RECORD_EVERY_CHECKPOINT = 'record-every-checkpoint';

/** A reference as a run started by an earlier version sent it (without `history` and `earlier`), in today's shape. */
function currentShape(ref: CheckpointRef): CheckpointRef {
  return { ...ref, history: ref.history ?? null, earlier: ref.earlier ?? [] };
}

/** The compute activities of one stage, with its kind's timeouts (definitions in schemas/stages). */
function computeFor(recipe: Recipe, options: RunOptions, stage: RecipeStage, waitForCancel: boolean): Compute {
  const { activity } = definitionOf(stage.kind);
  return proxyActivities<Compute>({
    activityId: stageActivityId(stage.id),
    taskQueue: computeQueue(recipe.device),
    startToCloseTimeout: `${activity.startToCloseSec} seconds`,
    heartbeatTimeout: `${options.heartbeatTimeoutSec ?? activity.heartbeatSec} seconds`,
    cancellationType: waitForCancel ? ActivityCancellationType.WAIT_CANCELLATION_COMPLETED : ActivityCancellationType.TRY_CANCEL,
    retry: {
      initialInterval: '1 second',
      maximumInterval: '1 minute',
      maximumAttempts: options.maxAttempts,
      nonRetryableErrorTypes: NON_RETRYABLE,
    },
  });
}

type Outcome = { ok: true; output: StageOutput } | { ok: false; cancelled: boolean };

export async function pipeline(input: PipelineInput): Promise<PipelineResult> {
  const { runId, recipe, options, resume } = input;
  const waitForCancel = patched(WAIT_FOR_CANCELLED_STAGES);
  const order = topologicalOrder(recipe);
  const progress = new Map<string, StageProgress>(
    order.map((s) => {
      const planned = resume?.checkpoints[s.id];
      return [s.id, { id: s.id, kind: s.kind, status: 'pending', reason: null, checkpoint: planned ? currentShape(planned) : null, error: null }];
    }),
  );
  const update = (id: string, patch: Partial<StageProgress>) => progress.set(id, { ...progress.get(id)!, ...patch });
  const snapshot = () => order.map((s) => progress.get(s.id)!);

  setHandler(progressQuery, snapshot);
  // Compute activities report each checkpoint as it lands, so a later `sieve resume` (or an
  // operator reading SQLite) knows where a partial stage stopped even if the stage never finishes.
  // The stage's reference keeps the newest checkpoint with the others as fallbacks: it is what a
  // retry, the progress query and `sieve resume` hand on.
  setHandler(checkpointSaved, async (reported) => {
    const ckpt = currentShape(reported);
    const known = progress.get(ckpt.stageId);
    if (!known) return;
    const newest = known.checkpoint;
    if (newest && newest.step >= ckpt.step) {
      const seen = checkpointCandidates(newest).some((c) => c.sha256 === ckpt.sha256);
      if (seen || !patched(RECORD_EVERY_CHECKPOINT)) return;
    }
    update(ckpt.stageId, { checkpoint: mergeCheckpoints(newest, ckpt) });
    // A stage checkpoints when it is cancelled, so this must be recorded even in a cancelled run.
    await CancellationScope.nonCancellable(() => control.recordCheckpoint({ runId, checkpoint: ckpt }));
  });

  // A sweep's point takes the shared stages from the sweep's shared run without resuming it.
  await control.beginRun({ runId, recipe, options, parentRunId: resume && !resume.sharedBy ? resume.parentRunId : null });

  const end = async (stageId: string, status: 'skipped' | 'cancelled' | 'failed', error: string | null, attempt: number | null = null): Promise<Outcome> => {
    update(stageId, { status, error });
    // Recording must happen even while the run is being cancelled.
    // The stage's checkpoints go along, so a stage that ends unfinished keeps those it was handed
    // (by `sieve resume`) in its own records, for a resume of this run.
    const checkpoint = progress.get(stageId)!.checkpoint;
    await CancellationScope.nonCancellable(() => control.recordStageEnd({ runId, stageId, status, error, attempt, checkpoint }));
    return { ok: false, cancelled: status === 'cancelled' };
  };

  const outcomes = new Map<string, Promise<Outcome>>();
  const runStage = async (stage: RecipeStage): Promise<Outcome> => {
    const deps = await Promise.all(stageInputs(stage).map((id) => outcomes.get(id)!));
    if (deps.some((d) => !d.ok && d.cancelled)) return end(stage.id, 'cancelled', null);
    if (deps.some((d) => !d.ok)) return end(stage.id, 'skipped', 'an input stage did not complete');
    const inputs = Object.fromEntries(stageInputs(stage).map((id, i) => [id, (deps[i] as { output: StageOutput }).output]));
    try {
      const plan = await control.prepareStage({ runId, recipe, stageId: stage.id, inputs, noCache: options.noCache, reuse: resume?.completed[stage.id] ? { runId: resume.parentRunId, output: resume.completed[stage.id], sharedBy: resume.sharedBy } : null });
      if (plan.decision !== 'run') {
        update(stage.id, { status: plan.decision, reason: plan.reason });
        return { ok: true, output: plan.output! };
      }
      update(stage.id, { status: 'running', reason: plan.reason });
      const task = { runId, recipe, stageId: stage.id, inputs, cacheKey: plan.cacheKey, resumeFrom: progress.get(stage.id)!.checkpoint };
      // One activity per stage kind, named after it (activities/stages/index.ts).
      const result = await computeFor(recipe, options, stage, waitForCancel)[stage.kind](task);
      await control.recordStageResult({ runId, stageId: stage.id, cacheKey: plan.cacheKey, result });
      update(stage.id, { status: 'completed' });
      return { ok: true, output: result.output };
    } catch (err) {
      if (isCancellation(err)) return end(stage.id, 'cancelled', null);
      // An attempt that timed out after the run's cancellation was requested (its worker died, so
      // nobody acknowledged it) ended because of the cancellation, not of a fault.
      if (err instanceof ActivityFailure && err.retryState === 'CANCEL_REQUESTED' && patched(RECORD_ENDS_DESPITE_CANCEL)) return end(stage.id, 'cancelled', null);
      return end(stage.id, 'failed', describeFailure(err), failedAttempt(err, options.maxAttempts));
    }
  };
  for (const stage of order) outcomes.set(stage.id, runStage(stage));

  // Branches never reject: each records its own end, so every stage has a final status.
  const results = await Promise.all(order.map((s) => outcomes.get(s.id)!));
  if (results.some((r) => !r.ok && r.cancelled)) {
    await CancellationScope.nonCancellable(async () => {
      await condition(allHandlersFinished);
      await control.finishRun({ runId, status: 'cancelled', error: null });
    });
    throw new CancelledFailure(`run ${runId} was cancelled`);
  }
  await condition(allHandlersFinished);
  const failed = order.filter((s) => progress.get(s.id)!.status === 'failed').map((s) => s.id);
  const status = failed.length ? 'failed' : 'completed';
  const finish = () => control.finishRun({ runId, status, error: failed.length ? `stage ${failed.join(', ')} failed` : null });
  // A cancellation requested after the last stage ended must not keep the run's end from being recorded.
  await (patched(RECORD_ENDS_DESPITE_CANCEL) ? CancellationScope.nonCancellable(finish) : finish());
  return { status, stages: snapshot() };
}

/**
 * The attempt a failed stage ended on: every allowed attempt when Temporal stopped retrying, else
 * the attempt its compute activity attached to the failure (activities/failures.ts attachAttempt).
 */
function failedAttempt(err: unknown, maxAttempts: number): number | null {
  if (!(err instanceof ActivityFailure)) return null;
  if (err.retryState === 'MAXIMUM_ATTEMPTS_REACHED') return maxAttempts;
  const details = err.cause instanceof ApplicationFailure ? err.cause.details : null;
  const attempt = (details?.[0] as { attempt?: unknown } | undefined)?.attempt;
  return typeof attempt === 'number' ? attempt : null;
}

/** The innermost message of an activity failure: what a researcher needs to see. */
function describeFailure(err: unknown): string {
  let e: unknown = err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}
