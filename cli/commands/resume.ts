// `sieve resume <run>`: continue a failed or cancelled run as a new run linked to it. Stages the
// old run finished are reused as they are; a stage it left partway continues from its last
// checkpoint; the rest run. The recipe is the old run's own. A run that has not ended is refused,
// with the way out (`sieve cancel`, which ends even a run nothing serves any more).

import { createArtifactStore } from '../../activities/store/artifacts';
import { openDb } from '../../activities/store/db';
import { getRun, listRuns } from '../read-models';
import type { ShowOutput } from '../../schemas/cli';
import type { Recipe } from '../../schemas/recipe';
import { resumePlan } from '../resume-plan';
import { TASK_QUEUES } from '../../workflows/contract';
import { inspectRun, openTemporal, unservedQueues, type TemporalSession } from '../temporal/connect';
import { follow, parseRunOptions, runOptions, submit } from './run';
import { defineCommand, sieveHome } from './_shared';
import { followSweep, submitSweep } from './_sweep-run';
import { continuedSweep, sweepInputOf } from '../sweep-resume';
import type { SweepResult } from '../../workflows/contract';

export default defineCommand({
  name: 'resume',
  description: 'continue a failed or cancelled run (or sweep) as a new linked run (or sweep)',
  positionals: ['<run|sweep>'],
  options: runOptions,
  async run({ positionals: [oldId], values }) {
    const options = parseRunOptions(values);
    const home = sieveHome();
    const sweep = await resumeSweepIfOne(home, oldId, values);
    if (sweep !== null) return sweep;
    const { db, close } = openDb({ home });
    let old: ShowOutput;
    let newId: string;
    try {
      const found = getRun(db, createArtifactStore(home), oldId);
      if (!found) throw new Error(`no run "${oldId}" in ${home}; \`sieve history\` lists the runs.`);
      old = found;
      const taken = new Set(listRuns(db, { name: old.name, limit: 10_000 }).map((r) => r.id));
      newId = nextId(oldId, taken);
    } finally {
      close();
    }
    if (old.status === 'completed') throw new Error(`run ${oldId} completed; there is nothing to resume (\`sieve run\` re-runs its recipe, served from the cache).`);
    const temporal = (await openTemporal(home, { start: true }))!;
    try {
      await refuseUnended(temporal, old);
      const plan = resumePlan(old);
      const recipe = old.recipe as Recipe;
      if (!values.json) {
        const reused = Object.keys(plan.completed);
        const partial = Object.values(plan.checkpoints).map((c) => `${c.stageId} from step ${c.step}`);
        console.error(`resuming ${oldId} as ${newId}: reuse ${reused.length ? reused.join(', ') : 'nothing'}; continue ${partial.length ? partial.join(', ') : 'nothing partway'}.`);
      }
      await submit(temporal, { runId: newId, recipe, options, resume: plan });
      return await follow(temporal, newId, recipe, { home, detach: Boolean(values.detach), json: Boolean(values.json) });
    } finally {
      await temporal.close();
    }
  },
});

/** `sieve resume <sweep>` (cli/sweep-resume.ts); null when `id` names no sweep. */
async function resumeSweepIfOne(home: string, id: string, values: Record<string, unknown>): Promise<number | null> {
  {
    const { db, close } = openDb({ home });
    try {
      if (getRun(db, createArtifactStore(home), id)) return null;
    } finally {
      close();
    }
  }
  const temporal = (await openTemporal(home, { start: true }))!;
  try {
    const found = await sweepInputOf(temporal, id);
    if (!found) return null;
    if (found.status === 'RUNNING') throw new Error(`sweep ${id} is still running; wait for it to end, or \`sieve cancel ${id}\` first.`);
    if (found.status === 'COMPLETED') {
      const result = (await temporal.client.workflow.getHandle(id).result()) as SweepResult;
      if (result.status === 'completed') throw new Error(`sweep ${id} completed; there is nothing to resume.`);
    }
    const { db, close } = openDb({ home });
    let input;
    try {
      const runs = listRuns(db, { limit: 100_000 }).map((r) => r.id);
      const base = id.replace(/-r\d+$/, '');
      let n = 1;
      while (runs.some((r) => r.startsWith(`${base}-r${n}-`))) n++;
      input = continuedSweep(db, home, found.input, `${base}-r${n}`);
    } finally {
      close();
    }
    input = { ...input, options: { ...input.options, ...parseRunOptions(values) } };
    if (!values.json) console.error(`resuming sweep ${id} as ${input.sweepId}.`);
    await submitSweep(temporal, input);
    return await followSweep(temporal, input, { home, json: Boolean(values.json), detach: Boolean(values.detach) });
  } finally {
    await temporal.close();
  }
}

/** A run that has not ended cannot be resumed: each refusal says how to end it (`sieve cancel`). */
async function refuseUnended(temporal: TemporalSession, old: ShowOutput) {
  const state = await inspectRun(temporal.client, old.id);
  const cancel = `\`sieve cancel ${old.id}\``;
  if (state.kind === 'running') {
    const unserved = state.fresh ? [] : await unservedQueues(temporal.client, state.stages);
    if (unserved.includes(TASK_QUEUES.control))
      throw new Error(`run ${old.id} is still open in Temporal but no worker serves it; ${cancel} ends it (then resume it), or \`sieve worker\` carries it on as it is.`);
    throw new Error(`run ${old.id} is still running; wait for it to end, or ${cancel} first.`);
  }
  if (old.status === 'running' || old.status === 'pending') {
    const workflow = state.kind === 'gone' ? 'gone from Temporal' : `closed (${state.status.toLowerCase()})`;
    throw new Error(`run ${old.id} is recorded as ${old.status} but its workflow is ${workflow}; ${cancel} records its end, then resume continues it.`);
  }
}

/** `<old>-r1`, `-r2`, … : the first id not yet used. */
function nextId(oldId: string, taken: Set<string>): string {
  const base = oldId.replace(/-r\d+$/, '');
  for (let n = 1; ; n++) if (!taken.has(`${base}-r${n}`)) return `${base}-r${n}`;
}
