// `sieve resume <run>`: continue a failed or cancelled run as a new run linked to it. Stages the
// old run finished are reused as they are; a stage it left partway continues from its last
// checkpoint; the rest run. The recipe is the old run's own.

import { createArtifactStore } from '../../activities/store/artifacts';
import { openDb } from '../../activities/store/db';
import { getRun, listRuns } from '../read-models';
import type { ShowOutput } from '../../schemas/cli';
import type { ArtifactRef, CheckpointRef, ResumePlan, StageOutput } from '../../schemas/pipeline';
import type { Recipe } from '../../schemas/recipe';
import { openTemporal } from '../temporal/connect';
import { follow, parseRunOptions, runOptions, submit } from './run';
import { defineCommand, sieveHome } from './_shared';

export default defineCommand({
  name: 'resume',
  description: 'continue a failed or cancelled run as a new linked run',
  positionals: ['<run>'],
  options: runOptions,
  async run({ positionals: [oldId], values }) {
    const options = parseRunOptions(values);
    const home = sieveHome();
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
      const state = await temporal.client.workflow
        .getHandle(oldId)
        .describe()
        .then((d) => d.status.name)
        .catch(() => null);
      if (state === 'RUNNING')
        throw new Error(`run ${oldId} is still running in Temporal; serve it with \`sieve worker\` (it continues by itself) or \`sieve cancel ${oldId}\` first.`);
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

/** `<old>-r1`, `-r2`, … : the first id not yet used. */
function nextId(oldId: string, taken: Set<string>): string {
  const base = oldId.replace(/-r\d+$/, '');
  for (let n = 1; ; n++) if (!taken.has(`${base}-r${n}`)) return `${base}-r${n}`;
}

/** Finished stages hand over their outputs; unfinished ones their newest checkpoint. */
export function resumePlan(old: ShowOutput): ResumePlan {
  const completed: Record<string, StageOutput> = {};
  const checkpoints: Record<string, CheckpointRef> = {};
  for (const s of old.stages) {
    const made = s.artifacts.filter((a) => a.role !== 'input');
    if (s.status === 'completed' || s.status === 'cached' || s.status === 'reused') {
      completed[s.id] = {
        artifacts: made.filter((a) => a.role !== 'checkpoint').map((a): ArtifactRef => ({ sha256: a.sha256, bytes: a.bytes, kind: a.kind, role: a.role })),
        metrics: Object.fromEntries(Object.entries(s.metrics).map(([k, v]) => [k, v ?? NaN])),
        computeMs: 0,
        events: [],
      };
      continue;
    }
    const newest = made.filter((a) => a.role === 'checkpoint' && a.step !== null).sort((a, b) => b.step! - a.step!)[0];
    if (newest) checkpoints[s.id] = { stageId: s.id, step: newest.step!, sha256: newest.sha256, bytes: newest.bytes };
  }
  return { parentRunId: old.id, completed, checkpoints };
}
