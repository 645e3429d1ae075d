// `sieve run <recipe>`: validate, submit as a Temporal workflow (workflow id = run id), follow it
// with a progress bar per stage, and print a summary. Submission is idempotent: the same recipe
// while a run of it is still going attaches to that run instead of starting a second one.

import { WorkflowIdConflictPolicy } from '@temporalio/common';
import type { Recipe } from '../../schemas/recipe';
import type { RunOptions } from '../../schemas/pipeline';
import { openDb } from '../../activities/store/db';
import { listRuns } from '../read-models';
import { computeQueue, TASK_QUEUES, type PipelineInput, type TaskQueue } from '../../workflows/contract';
import { pipeline } from '../../workflows/pipeline';
import { livePollers, openTemporal, type TemporalSession } from '../temporal/connect';
import { cudaUnavailable } from '../cuda';
import { loadRecipeFile } from './_recipe';
import { reconcileHome } from '../reconcile';
import { printSummary } from './_summary';
import { followRun, loadWorkerModule } from './_watch';
import { UsageError, defineCommand, jsonOption, printJson, sieveHome } from './_shared';
import { spawnDetachedWorker } from './_detach';
import { followSweep, submitSweep, sweepInput } from './_sweep-run';
import { parseGrid, planSweep } from '../sweep';

export const runOptions = {
  'no-cache': { type: 'boolean', description: 're-run every stage even when a cached result exists' },
  detach: { type: 'boolean', description: 'submit and return; the run continues in the background' },
  'heartbeat-timeout': {
    type: 'string',
    description: "seconds without a heartbeat before a stage attempt is retried elsewhere (default: each stage kind's own, 60 s today)",
  },
  'max-attempts': { type: 'string', description: 'attempts per stage before it fails', default: '5' },
  ...jsonOption,
} as const;

export default defineCommand({
  name: 'run',
  description: 'run a recipe end to end (durable: resumable after crashes)',
  positionals: ['<recipe>'],
  options: {
    ...runOptions,
    seed: { type: 'string', description: "run with this seed instead of the recipe's (the run records the recipe as run)" },
    seeds: { type: 'string', description: 'a sweep: run the recipe once per seed (1,2,3), as one sweep workflow' },
    set: { type: 'string', multiple: true, description: 'a sweep: a recipe path and the values to try (stages.ft.lr=1e-3,3e-3); repeat for a grid' },
    concurrency: { type: 'string', description: 'a sweep: how many of its points run at once', default: '2' },
  },
  async run({ positionals: [file], values }) {
    const grid = parseGrid(values.seeds as string | undefined, values.set as string[] | undefined);
    if (grid) return runSweep(file, grid, values);
    if (values.concurrency !== '2' && values.concurrency !== undefined) throw new UsageError('--concurrency is for sweeps (with --seeds or --set)');
    const given = values.seed as string | undefined;
    const seed = given === undefined ? undefined : /^-?\d+$/.test(given) ? Number(given) : NaN;
    if (seed !== undefined && !Number.isInteger(seed)) throw new UsageError(`--seed must be a whole number, got "${given}".`);
    const { recipe, hash } = await loadRecipeFile(file, { seed });
    const options = parseRunOptions(values);
    const home = sieveHome();
    const temporal = (await openTemporal(home, { start: true, whileStarting: loadWorkerModule }))!;
    try {
      await checkDevice(recipe, temporal);
      await reconcileHome(home, temporal.client);
      const runId = await chooseRunId(home, temporal, recipe.name, hash);
      await submit(temporal, { runId, recipe, options, resume: null });
      return await follow(temporal, runId, recipe, { home, detach: Boolean(values.detach), json: Boolean(values.json) });
    } finally {
      await temporal.close();
    }
  },
});

async function runSweep(file: string, grid: NonNullable<ReturnType<typeof parseGrid>>, values: Record<string, unknown>): Promise<number> {
  if (values.seed !== undefined) throw new UsageError('--seed runs one seed; a sweep takes --seeds');
  const concurrency = Number(values.concurrency ?? 2);
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new UsageError(`--concurrency must be a whole number of at least 1, got "${values.concurrency}".`);
  const plan = await planSweep(file, grid);
  const options = parseRunOptions(values);
  const home = sieveHome();
  const temporal = (await openTemporal(home, { start: true, whileStarting: loadWorkerModule }))!;
  try {
    await checkDevice(plan.base, temporal);
    await reconcileHome(home, temporal.client);
    // a sweep id is taken once any run is named after it
    const sweepId = await firstFreeId(home, temporal, plan.base.name, `${plan.base.name}-sweep-${plan.hash.slice(0, 8)}`, (id, taken) => [...taken].some((run) => run.startsWith(`${id}-`)));
    const input = sweepInput(sweepId, plan, options, concurrency);
    await submitSweep(temporal, input);
    return await followSweep(temporal, input, { home, json: Boolean(values.json), detach: Boolean(values.detach) });
  } finally {
    await temporal.close();
  }
}

/**
 * Workers heartbeat at least once a second, throttled to 80% of the timeout: below two seconds a
 * healthy stage would be declared dead between two heartbeats.
 */
const MIN_HEARTBEAT_TIMEOUT_SEC = 2;

export function parseRunOptions(values: Record<string, unknown>): RunOptions {
  const atLeast = (flag: string, min: number, integer: boolean) => {
    const raw = values[flag] as string;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
      throw new UsageError(`--${flag} must be ${integer ? 'an integer' : 'a number'} of at least ${min}, got "${raw}".`);
    }
    return n;
  };
  return {
    noCache: Boolean(values['no-cache']),
    heartbeatTimeoutSec: values['heartbeat-timeout'] === undefined ? null : atLeast('heartbeat-timeout', MIN_HEARTBEAT_TIMEOUT_SEC, false),
    maxAttempts: atLeast('max-attempts', 1, true),
  };
}

/** The queues an embedded worker must serve for this recipe. */
export function queuesFor(recipe: Recipe): TaskQueue[] {
  return [TASK_QUEUES.control, computeQueue(recipe.device)];
}

/**
 * A cuda recipe needs a GPU worker. The embedded server's only worker is this process, so this
 * machine must have a CUDA backend; on a shared server a GPU host serves the gpu queue, and when
 * none does yet the run is submitted all the same (queued) with a sentence saying so.
 */
async function checkDevice(recipe: Recipe, temporal: TemporalSession) {
  if (recipe.device !== 'cuda') return;
  if (temporal.embedded) {
    const why = cudaUnavailable();
    if (why)
      throw new Error(`the recipe asks for device: cuda, but this machine cannot run it (${why}), and an embedded server has no other workers: use device: cpu, or run it against a shared Temporal server (TEMPORAL_ADDRESS) that a GPU host serves with \`sieve worker --queue gpu\`.`);
    return;
  }
  const gpuWorkers = await livePollers(temporal.client, TASK_QUEUES.gpu, 'activity');
  if (gpuWorkers.length === 0)
    console.error(`sieve: no worker serves the gpu queue on ${temporal.address} yet: the run is queued, and its stages start when a GPU host runs \`sieve worker --queue gpu\` against this server.`);
}

/**
 * `<name>-<recipe hash prefix>`, with `-2`, `-3`… for later runs of the same recipe. A run of this
 * recipe that Temporal still reports as running is reused, which makes submission idempotent.
 */
async function chooseRunId(home: string, temporal: TemporalSession, name: string, hash: string): Promise<string> {
  return firstFreeId(home, temporal, name, `${name}-${hash.slice(0, 8)}`, (id, taken) => taken.has(id));
}

/**
 * `base`, `base-2`, `base-3`…: the first that Temporal reports running (submitting again attaches
 * to it), or that neither Temporal nor `used(id, the recipe's recorded run ids)` knows.
 */
export async function firstFreeId(home: string, temporal: TemporalSession, name: string, base: string, used: (id: string, taken: ReadonlySet<string>) => boolean): Promise<string> {
  const { db, close } = openDb({ home });
  let taken: Set<string>;
  try {
    taken = new Set(listRuns(db, { name, limit: 100_000 }).map((r) => r.id));
  } finally {
    close();
  }
  for (let n = 1; ; n++) {
    const id = n === 1 ? base : `${base}-${n}`;
    const state = await temporal.client.workflow
      .getHandle(id)
      .describe()
      .then((d) => d.status.name)
      .catch(() => null);
    if (state === 'RUNNING') return id;
    if (state === null && !used(id, taken)) return id;
  }
}

export async function submit(temporal: TemporalSession, input: PipelineInput) {
  await temporal.client.workflow.start(pipeline, {
    workflowId: input.runId,
    taskQueue: TASK_QUEUES.control,
    args: [input],
    // Submitting the same run id while it runs attaches to it instead of failing or duplicating.
    workflowIdConflictPolicy: WorkflowIdConflictPolicy.USE_EXISTING,
  });
}

/** Follows a submitted run (or hands it to a background worker with --detach) and reports how it ended. */
export async function follow(temporal: TemporalSession, runId: string, recipe: Recipe, opts: { home: string; detach: boolean; json: boolean }): Promise<number> {
  if (opts.detach) {
    if (temporal.embedded) spawnDetachedWorker(opts.home, runId, queuesFor(recipe));
    if (opts.json) printJson({ id: runId });
    else console.log(`${runId} submitted; follow it with \`sieve status ${runId}\`.`);
    return 0;
  }
  if (!opts.json) console.error(`run ${runId}${temporal.embedded ? '' : ` on ${temporal.address}`}`);
  const end = await followRun(temporal, runId, { home: opts.home, queues: queuesFor(recipe), quiet: opts.json });
  if (end.kind === 'detached') {
    const hint = temporal.embedded
      ? `it continues when a worker serves it (\`sieve worker\`), or stop it with \`sieve cancel ${runId}\``
      : 'it continues on the cluster\'s workers';
    console.error(`\ndetached from ${runId}: ${hint}.`);
    if (opts.json) printJson({ id: runId });
    return 130;
  }
  if (end.status !== 'COMPLETED' && end.status !== 'CANCELLED') {
    // The workflow itself failed (a stage's failure still completes it): typically the run could
    // not be recorded. Say why, and never exit 0.
    if (!opts.json) tryPrintSummary(opts.home, runId);
    throw new Error(`run ${runId} ${end.status.toLowerCase().replace('_', ' ')}: ${await workflowFailure(temporal, runId)}`);
  }
  if (!opts.json) printSummary(opts.home, runId);
  if (opts.json) printJson({ id: runId });
  return end.status === 'COMPLETED' && end.stages.every((s) => s.status !== 'failed') ? 0 : 1;
}

/** The innermost message of a closed workflow's failure: what a researcher needs to see. */
async function workflowFailure(temporal: TemporalSession, runId: string): Promise<string> {
  const error = await temporal.client.workflow
    .getHandle(runId)
    .result()
    .then(() => null, (e: unknown) => e);
  let inner = error;
  while (inner instanceof Error && inner.cause instanceof Error) inner = inner.cause;
  return inner instanceof Error ? inner.message : 'no reason recorded';
}

function tryPrintSummary(home: string, runId: string) {
  try {
    printSummary(home, runId);
  } catch (err) {
    console.error(`(no summary: ${(err as Error).message})`);
  }
}
