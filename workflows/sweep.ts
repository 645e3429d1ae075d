// The sweep workflow: one recipe over a grid of seeds and settings (cli/sweep.ts builds the grid).
// The stages every point shares (same settings, same inputs) run once, as a run of their own;
// then every point runs as a child pipeline that takes those stages' outputs as they are, at most
// `concurrency` points at a time. Cancelling the sweep cancels its children, which record their
// ends; each child is a durable run of its own, so a worker killed mid-sweep loses nothing.
//
// Deterministic code only: no I/O, no clocks, no imports beyond zod schemas and the Temporal API.

import { executeChild, isCancellation, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';
import type { createControlActivities } from '../activities';
import type { ResumePlan, RunOptions } from '../schemas/pipeline';
import type { Recipe } from '../schemas/recipe';
import { NON_RETRYABLE, sweepProgressQuery, TASK_QUEUES, type PipelineResult, type SweepInput, type SweepResult, type SweepRunStatus } from './contract';
import { pipeline } from './pipeline';

const control = proxyActivities<ReturnType<typeof createControlActivities>>({
  taskQueue: TASK_QUEUES.control,
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 10, nonRetryableErrorTypes: NON_RETRYABLE },
});

export async function sweep(input: SweepInput): Promise<SweepResult> {
  const { sweepId, shared, points, options, concurrency } = input;
  const state: SweepResult = {
    status: 'completed',
    shared: shared ? { runId: shared.runId, status: 'pending' } : null,
    points: points.map((p) => ({ runId: p.runId, status: 'pending' })),
  };
  setHandler(sweepProgressQuery, () => state);

  const child = async (runId: string, recipe: Recipe, runOptions: RunOptions, resume: ResumePlan | null): Promise<SweepRunStatus> => {
    try {
      const result: PipelineResult = await executeChild(pipeline, {
        workflowId: runId,
        taskQueue: workflowInfo().taskQueue,
        args: [{ runId, recipe, options: runOptions, resume }],
      });
      return result.status;
    } catch (err) {
      if (isCancellation(err)) throw err;
      return 'failed';
    }
  };

  let sharedPlan: ResumePlan | null = null;
  if (shared) {
    state.shared!.status = 'running';
    state.shared!.status = await child(shared.runId, shared.recipe, { ...options, sweep: { id: sweepId, point: null } }, shared.resume ?? null);
    if (state.shared!.status !== 'completed') {
      state.status = 'failed';
      return state;
    }
    sharedPlan = { parentRunId: shared.runId, completed: await control.finishedOutputs({ runId: shared.runId }), checkpoints: {}, sharedBy: sweepId };
  }

  // A sliding window of at most `concurrency` points.
  let next = 0;
  const running = new Set<Promise<void>>();
  const launch = (i: number) => {
    const p = points[i];
    state.points[i].status = 'running';
    // A point the sweep continues keeps its own plan; the shared stages come with it either way.
    const resume = p.resume ? { ...p.resume, completed: { ...(sharedPlan?.completed ?? {}), ...p.resume.completed } } : sharedPlan;
    const done: Promise<void> = child(p.runId, p.recipe, { ...options, sweep: { id: sweepId, point: p.point } }, resume).then((status) => {
      state.points[i].status = status;
      running.delete(done);
    });
    running.add(done);
  };
  while (next < points.length || running.size > 0) {
    while (running.size < concurrency && next < points.length) launch(next++);
    await Promise.race(running);
  }
  if (state.points.some((p) => p.status !== 'completed')) state.status = 'failed';
  return state;
}
