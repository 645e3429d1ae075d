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
import type { RunOptions, StageOutput, StageProgress } from '../schemas/pipeline';
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
    order.map((s) => [s.id, { id: s.id, kind: s.kind, status: 'pending', reason: null, checkpoint: resume?.checkpoints[s.id] ?? null, error: null }]),
  );
  const update = (id: string, patch: Partial<StageProgress>) => progress.set(id, { ...progress.get(id)!, ...patch });
  const snapshot = () => order.map((s) => progress.get(s.id)!);

  setHandler(progressQuery, snapshot);
  // Compute activities report each checkpoint as it lands, so a later `sieve resume` (or an
  // operator reading SQLite) knows where a partial stage stopped even if the stage never finishes.
  setHandler(checkpointSaved, async (ckpt) => {
    const known = progress.get(ckpt.stageId);
    if (!known || (known.checkpoint && known.checkpoint.step >= ckpt.step)) return;
    update(ckpt.stageId, { checkpoint: ckpt });
    // A stage checkpoints when it is cancelled, so this must be recorded even in a cancelled run.
    await CancellationScope.nonCancellable(() => control.recordCheckpoint({ runId, checkpoint: ckpt }));
  });

  await control.beginRun({ runId, recipe, options, parentRunId: resume?.parentRunId ?? null });

  const end = async (stageId: string, status: 'skipped' | 'cancelled' | 'failed', error: string | null): Promise<Outcome> => {
    update(stageId, { status, error });
    // Recording must happen even while the run is being cancelled.
    await CancellationScope.nonCancellable(() => control.recordStageEnd({ runId, stageId, status, error }));
    return { ok: false, cancelled: status === 'cancelled' };
  };

  const outcomes = new Map<string, Promise<Outcome>>();
  const runStage = async (stage: RecipeStage): Promise<Outcome> => {
    const deps = await Promise.all(stageInputs(stage).map((id) => outcomes.get(id)!));
    if (deps.some((d) => !d.ok && d.cancelled)) return end(stage.id, 'cancelled', null);
    if (deps.some((d) => !d.ok)) return end(stage.id, 'skipped', 'an input stage did not complete');
    const inputs = Object.fromEntries(stageInputs(stage).map((id, i) => [id, (deps[i] as { output: StageOutput }).output]));
    try {
      const plan = await control.prepareStage({ runId, recipe, stageId: stage.id, inputs, noCache: options.noCache, reuse: resume?.completed[stage.id] ? { runId: resume.parentRunId, output: resume.completed[stage.id] } : null });
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
      return end(stage.id, 'failed', describeFailure(err));
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
  await control.finishRun({ runId, status, error: failed.length ? `stage ${failed.join(', ')} failed` : null });
  return { status, stages: snapshot() };
}

/** The innermost message of an activity failure: what a researcher needs to see. */
function describeFailure(err: unknown): string {
  let e: unknown = err;
  while (e instanceof ActivityFailure && e.cause) e = e.cause;
  return e instanceof Error ? e.message : String(e);
}
