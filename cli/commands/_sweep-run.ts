// `sieve run <recipe> --seeds … --set …`: the recipe over a grid, as one sweep workflow
// (workflows/sweep.ts) with a child run per point (cli/sweep.ts builds the grid). Followed like a
// run: in embedded mode this process's workers execute it, and a line is printed as each run of
// the sweep changes status; Ctrl-C detaches, and the sweep stays durable in Temporal.

import { WorkflowIdConflictPolicy } from '@temporalio/common';
import type { RunOptions } from '../../schemas/pipeline';
import type { SweepOutput } from '../../schemas/cli';
import { sweepProgressQuery, TASK_QUEUES, type SweepInput, type SweepResult } from '../../workflows/contract';
import { sweep } from '../../workflows/sweep';
import { pointLabel, sharedRecipe, type SweepPlan } from '../sweep';
import type { TemporalSession } from '../temporal/connect';
import { queuesFor } from './run';
import { loadWorkerModule } from './_watch';
import { printJson, table } from './_shared';

/** The sweep's workflow input: the shared run first (when some stage is shared), then a run per point. */
export function sweepInput(sweepId: string, plan: SweepPlan, options: RunOptions, concurrency: number): SweepInput {
  return {
    sweepId,
    shared: plan.shared.length > 0 ? { runId: `${sweepId}-shared`, recipe: sharedRecipe(plan.points[0].recipe, plan.shared) } : null,
    points: plan.points.map((p) => ({ runId: `${sweepId}-p${p.point.index}`, recipe: p.recipe, point: p.point, resume: null })),
    options,
    concurrency,
  };
}

export async function submitSweep(temporal: TemporalSession, input: SweepInput) {
  await temporal.client.workflow.start(sweep, {
    workflowId: input.sweepId,
    taskQueue: TASK_QUEUES.control,
    args: [input],
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
  });
}

/** Follows a sweep to its end; exit status 0 when every run of it completed. */
export async function followSweep(temporal: TemporalSession, input: SweepInput, opts: { home: string; json: boolean; detach: boolean }): Promise<number> {
  const { sweepId } = input;
  const labels = new Map<string, string>(input.points.map((p) => [p.runId, pointLabel(p.point)]));
  if (input.shared) labels.set(input.shared.runId, `shared stages: ${input.shared.recipe.stages.map((s) => s.id).join(', ')}`);
  if (opts.detach) {
    if (temporal.embedded) throw new Error('a sweep needs workers for as long as it runs: with the embedded server it cannot --detach; start `sieve server` and `sieve worker`s, then run it with TEMPORAL_ADDRESS set');
    if (opts.json) printJson({ id: sweepId, runs: [] } satisfies SweepOutput);
    else console.log(`${sweepId} submitted: ${input.points.length} points; \`sieve compare ${sweepId}\` once it ends.`);
    return 0;
  }
  const workers = temporal.embedded ? await loadWorkerModule().createWorkers({ target: temporal.target, home: opts.home, queues: queuesFor(input.points[0].recipe) }) : null;
  const workersDone = workers?.run();
  let interrupted = false;
  const interrupt = () => (interrupted = true);
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);
  if (!opts.json) console.error(`sweep ${sweepId}: ${input.points.length} points${input.shared ? `, shared stages ${input.shared.recipe.stages.map((s) => s.id).join(', ')} run once first` : ''}, ${input.concurrency} at a time`);
  const handle = temporal.client.workflow.getHandle(sweepId);
  const closed = handle.result().then(
    (r) => r as SweepResult,
    () => null,
  );
  const seen = new Map<string, string>();
  let last: SweepResult | null = null;
  try {
    for (;;) {
      const done = await Promise.race([closed.then((r) => r !== null), new Promise<false>((r) => setTimeout(() => r(false), 1000))]);
      if (interrupted) break;
      await temporal.keepAlive().catch(() => undefined);
      last = (done ? await closed : await handle.query(sweepProgressQuery).catch(() => last)) ?? last;
      for (const run of last ? [...(last.shared ? [last.shared] : []), ...last.points] : []) {
        if (seen.get(run.runId) === run.status) continue;
        seen.set(run.runId, run.status);
        if (!opts.json && run.status !== 'pending') console.error(`${run.runId.padEnd(Math.max(24, sweepId.length + 8))} ${run.status.padEnd(10)} ${labels.get(run.runId) ?? ''}`);
      }
      if (done) break;
      const state = await handle.describe().then((d) => d.status.name).catch(() => 'RUNNING');
      if (state !== 'RUNNING') break;
    }
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    workers?.shutdown();
    await workersDone;
  }
  if (interrupted) {
    console.error(`\ndetached from sweep ${sweepId}: it continues when workers serve it (\`sieve worker\`), or stop it with \`sieve cancel ${sweepId}\`.`);
    return 130;
  }
  const result = await closed;
  if (!result) throw new Error(`sweep ${sweepId} did not complete (cancelled or failed in Temporal); \`sieve resume ${sweepId}\` continues it`);
  const runs = [...(result.shared ? [result.shared] : []), ...result.points].map((r) => ({ id: r.runId, status: r.status, label: labels.get(r.runId) ?? '' }));
  if (opts.json) printJson({ id: sweepId, runs } satisfies SweepOutput);
  else {
    console.log(table(['run', 'status', 'point'], runs.map((r) => [r.id, r.status, r.label])));
    console.log(`sweep ${sweepId}: ${result.status}; \`sieve compare ${sweepId}\` gives mean ± sd over the seeds of each setting.`);
  }
  return result.status === 'completed' ? 0 : 1;
}
