// `sieve reproduce <run> [--stage <id>]`: runs a finished run's recorded, resolved recipe again with
// the cache off, as a new run linked to it (`reproduces`), and reports per stage whether the outputs
// are bit-identical, naming what was not the same where they are not (cli/reproduce-report.ts).
// With --stage, only that stage and the stages downstream of it run again; the others are taken
// from the original run as they are. Exits 1 when a stage did not reproduce.

import { createArtifactStore } from '../../activities/store/artifacts';
import { openDb } from '../../activities/store/db';
import type { ReproduceOutput, ShowOutput } from '../../schemas/cli';
import type { ResumePlan } from '../../schemas/pipeline';
import { stageInputs, type Recipe } from '../../schemas/recipe';
import { getRun, listRuns } from '../read-models';
import { compareReproduction } from '../reproduce-report';
import { resumePlan } from '../resume-plan';
import { openTemporal } from '../temporal/connect';
import { follow, parseRunOptions, runOptions, submit } from './run';
import { NotFoundError, UsageError, defineCommand, printJson, sieveHome, table } from './_shared';

const { 'no-cache': _noCache, ...options } = runOptions;

export default defineCommand({
  name: 'reproduce',
  description: "run a finished run's recipe again with the cache off and compare its outputs, stage by stage",
  positionals: ['<run>'],
  options: {
    ...options,
    stage: { type: 'string', description: 'only this stage and those downstream of it; the rest are taken from the run as they are' },
  },
  async run({ positionals: [originalId], values }) {
    if (values.detach) throw new UsageError('reproduce compares the outputs when the run ends, so it cannot --detach');
    const home = sieveHome();
    const { db, close } = openDb({ home });
    let original: ShowOutput;
    let newId: string;
    try {
      const found = getRun(db, createArtifactStore(home), originalId);
      if (!found) throw new NotFoundError(`no run "${originalId}" in ${home}; \`sieve history\` lists the runs.`);
      original = found;
      const taken = new Set(listRuns(db, { name: original.name, limit: 10_000 }).map((r) => r.id));
      newId = nextId(originalId, taken);
    } finally {
      close();
    }
    const recipe = original.recipe as Recipe;
    const targets = stagesToRun(recipe, typeof values.stage === 'string' ? values.stage : null);
    for (const id of targets) {
      const s = original.stages.find((x) => x.id === id);
      if (!s || !['completed', 'cached', 'reused'].includes(s.status)) {
        throw new UsageError(`stage ${id} of run ${originalId} did not finish (${s?.status ?? 'never started'}): there is nothing to reproduce; \`sieve resume ${originalId}\` finishes it first`);
      }
    }
    let resume: ResumePlan | null = null;
    if (targets.length < recipe.stages.length) {
      const plan = resumePlan(original);
      resume = { ...plan, completed: Object.fromEntries(Object.entries(plan.completed).filter(([id]) => !targets.includes(id))), checkpoints: {} };
    }
    const temporal = (await openTemporal(home, { start: true }))!;
    let code: number;
    try {
      if (!values.json) console.error(`reproducing ${originalId} as ${newId}: ${targets.join(', ')} with the cache off${resume ? `; ${Object.keys(resume.completed).join(', ')} taken from ${originalId}` : ''}.`);
      await submit(temporal, { runId: newId, recipe, options: { ...parseRunOptions({ ...values, 'no-cache': true }), reproduces: originalId }, resume });
      code = await follow(temporal, newId, recipe, { home, detach: false, json: Boolean(values.json) });
    } finally {
      await temporal.close();
    }
    if (code !== 0) throw new Error(`the reproduction ${newId} did not complete (\`sieve show ${newId}\`), so there is nothing to compare`);
    const report = withDb(home, (d) => compareReproduction(d, originalId, newId, targets));
    if (values.json) printJson(report satisfies ReproduceOutput);
    else printReport(report);
    return report.identical ? 0 : 1;
  },
});

/** The stage and every stage downstream of it, in recipe order; every stage without one. */
function stagesToRun(recipe: Recipe, stage: string | null): string[] {
  if (stage === null) return recipe.stages.map((s) => s.id);
  if (!recipe.stages.some((s) => s.id === stage)) throw new UsageError(`the recipe has no stage "${stage}"; its stages are ${recipe.stages.map((s) => s.id).join(', ')}`);
  const chosen = new Set([stage]);
  for (const s of recipe.stages) if (stageInputs(s).some((id) => chosen.has(id))) chosen.add(s.id);
  return recipe.stages.map((s) => s.id).filter((id) => chosen.has(id));
}

function withDb<T>(home: string, f: (db: ReturnType<typeof openDb>['db']) => T): T {
  const { db, close } = openDb({ home });
  try {
    return f(db);
  } finally {
    close();
  }
}

function printReport(report: ReproduceOutput) {
  console.log(
    table(
      ['stage', 'outputs', 'compared with', 'what differed'],
      report.stages.map((s) => [
        s.id,
        s.identical ? 'bit-identical' : `differ: ${s.differs.map((d) => d.role).join(', ')}`,
        `${s.original.stageId} of ${s.original.runId}`,
        s.causes.length ? s.causes.join('; ') : s.identical ? '' : 'nothing recorded: the same code, data, inputs and machine (nondeterminism)',
      ]),
    ),
  );
  console.log(report.identical ? `${report.id} reproduces ${report.reproduces} bit for bit.` : `${report.id} does not reproduce ${report.reproduces} in every stage.`);
}

/** `<original>-x1`, `-x2`, …: the first id not yet used. */
function nextId(originalId: string, taken: Set<string>): string {
  for (let n = 1; ; n++) if (!taken.has(`${originalId}-x${n}`)) return `${originalId}-x${n}`;
}
