// `sieve compare <run[:stage]>...`: runs, or the models single stages produced, side by side — which
// recipe settings differ (every default filled in, so an omitted key that took its default still
// compares), each stage's outcome and compute time, every final metric, and the models' measures
// (perplexity, 2:4 share, bits per weight, size, speed). A `run:stage` operand narrows its run to
// that stage and the stages it derives from. `--html` writes the same tables, with charts, to one
// self-contained file. `sieve compare <sweep>` gives a sweep's settings side by side instead, each
// metric as mean ± sd over the seeds (cli/sweep-compare.ts). Reads SQLite only.

import { createArtifactStore, type ArtifactStore } from '../../activities/store/artifacts';
import { openDb, type SieveDb } from '../../activities/store/db';
import type { CompareOutput, ShowOutput, SweepCompareOutput } from '../../schemas/cli';
import { stageInputs } from '../../schemas/recipe';
import { getRun } from '../read-models';
import { reconcileHome } from '../reconcile';
import { reportFigures } from '../report/figures';
import { renderReport, writeReport } from '../report/html';
import { measureModel, measuredModels, modelLabel, producedModel, whyNoModel } from '../report/models';
import { comparisonTables, operandLabel, printTables } from '../report/tables';
import { compareSweep } from '../sweep-compare';
import { formatNumber } from './_summary';
import { NotFoundError, UsageError, defineCommand, htmlOption, jsonOption, printJson, sieveHome, table } from './_shared';

export default defineCommand({
  name: 'compare',
  description: 'compare runs, or the models of single stages (run:stage): recipe differences, stage outcomes, metrics, model measures',
  positionals: ['<run[:stage]|sweep>', '[<run[:stage]>...]'],
  options: { ...jsonOption, ...htmlOption },
  async run({ positionals, values }) {
    const home = sieveHome();
    await reconcileHome(home);
    const { db, close } = openDb({ home });
    try {
      if (positionals.length === 1) {
        const sweep = compareSweep(db, positionals[0]);
        if (!sweep) {
          if (getRun(db, createArtifactStore(home), positionals[0])) throw new UsageError('compare needs two runs (or run:stage operands), or one sweep');
          throw new NotFoundError(`no run or sweep "${positionals[0]}" in ${home}; \`sieve history\` lists the runs.`);
        }
        if (typeof values.html === 'string') throw new UsageError('--html compares runs; a sweep prints its table (or --json)');
        if (values.json) return printJson(sweep);
        return printSweep(sweep);
      }
      const store = createArtifactStore(home);
      const operands = positionals.map((text) => resolveOperand(db, store, home, text));
      const result = compareOperands(operands);
      // The file is written before anything is printed, so an unwritable path fails the command cleanly.
      if (typeof values.html === 'string') {
        const figures = await reportFigures(
          db,
          operands.flatMap((o) => scope(o).stages.map((s) => ({ label: `${o.run.id}:${s.id}`, ref: { runId: o.run.id, stageId: s.id } }))),
          result.models.map((m) => ({ label: modelLabel(m), measures: m })),
        );
        const page = renderReport({
          title: `sieve compare ${result.runs.map(operandLabel).join(' ')}`,
          lines: [`generated ${new Date().toISOString()} from ${home}`],
          tables: comparisonTables(result),
          figures,
        });
        process.stderr.write(`report written to ${writeReport(values.html, page)}\n`);
      }
      if (values.json) return printJson(result);
      printTables(comparisonTables(result));
    } finally {
      close();
    }
  },
});

/** A whole run, or one stage of it: the model that stage produced. */
export interface Operand {
  run: ShowOutput;
  stage: string | null;
}

/** `run` or `run:stage` (stage ids never hold a colon), checked against the database. */
function resolveOperand(db: SieveDb, store: ArtifactStore, home: string, text: string): Operand {
  const colon = text.lastIndexOf(':');
  const [runId, stageId] = colon < 0 ? [text, null] : [text.slice(0, colon), text.slice(colon + 1)];
  const run = getRun(db, store, runId);
  if (!run) throw new NotFoundError(`no run "${runId}" in ${home}; \`sieve history\` lists the runs.`);
  if (stageId === null) return { run, stage: null };
  const models = run.stages.filter(producedModel).map((s) => `${run.id}:${s.id}`);
  const choices = models.length ? `its models are ${models.join(', ')}` : 'it produced no model';
  const stage = run.stages.find((s) => s.id === stageId);
  if (!stage) {
    const planned = run.recipe.stages.some((s) => s.id === stageId);
    throw new NotFoundError(`${planned ? `stage "${stageId}" of run "${runId}" never started` : `run "${runId}" has no stage "${stageId}"`}; ${choices}.`);
  }
  const why = whyNoModel(stage);
  if (why) throw new NotFoundError(`stage "${stageId}" of run "${runId}" produced no model (${why}); ${choices}.`);
  return { run, stage: stageId };
}

/** What an operand stands for: its whole run, or the stage and every stage it derives from through `from`. */
function scope({ run, stage }: Operand): ShowOutput {
  if (stage === null) return run;
  const keep = new Set<string>();
  const visit = (id: string) => {
    if (keep.has(id)) return;
    keep.add(id);
    const config = run.recipe.stages.find((s) => s.id === id);
    if (config) stageInputs(config).forEach(visit);
  };
  visit(stage);
  return { ...run, recipe: { ...run.recipe, stages: run.recipe.stages.filter((s) => keep.has(s.id)) }, stages: run.stages.filter((s) => keep.has(s.id)) };
}

export function compareOperands(operands: Operand[]): CompareOutput {
  const scoped = operands.map(scope);
  const flat = scoped.map((r) => flattenRecipe(r.recipe));
  const paths = unique(flat.flatMap((f) => [...f.keys()]));
  const recipe = paths
    .filter((path) => new Set(flat.map((f) => f.get(path) ?? 'absent')).size > 1)
    .map((path) => ({ path, values: flat.map((f) => (f.has(path) ? JSON.parse(f.get(path)!) : null)) }));

  const stageIds = unique(scoped.flatMap((r) => r.stages.map((s) => s.id)));
  const stages = stageIds.map((id) => ({
    id,
    runs: scoped.map((r) => {
      const s = r.stages.find((x) => x.id === id);
      return s ? { status: s.status, computeMs: s.timings.computeMs, reusedFrom: s.reusedFrom } : null;
    }),
  }));

  const keys = unique(scoped.flatMap((r) => r.stages.flatMap((s) => Object.keys(s.metrics).map((name) => JSON.stringify([s.id, name])))));
  const metrics = keys.map((key) => {
    const [stage, name] = JSON.parse(key) as [string, string];
    return { stage, name, values: scoped.map((r) => r.stages.find((s) => s.id === stage)?.metrics[name] ?? null) };
  });

  const models = operands.flatMap(({ run, stage }) => (stage === null ? measuredModels(run) : [stage]).map((id) => measureModel(run, id)));
  return {
    runs: operands.map(({ run: { id, name, status, recipeHash, codeVersion, createdAt }, stage }) => ({ id, name, status, recipeHash, codeVersion, createdAt, stage })),
    recipe,
    stages,
    metrics,
    // `a a:dense` names one model twice; it is one row.
    models: [...new Map(models.map((m) => [modelLabel(m), m])).values()],
  };
}

/** Leaf settings by path, as canonical JSON text; stages are keyed by id, not position. */
function flattenRecipe(recipe: ShowOutput['recipe']): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (value: unknown, path: string) => {
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k);
    } else {
      out.set(path, JSON.stringify(value));
    }
  };
  const { stages, ...rest } = recipe;
  walk(rest, '');
  for (const stage of stages) {
    const { id, ...settings } = stage;
    walk(settings, `stages[${id}]`);
  }
  return out;
}

const unique = <T>(xs: T[]): T[] => [...new Set(xs)];

/** A sweep's settings side by side: its runs, then each metric as mean ± sd (n) per setting. */
function printSweep(sweep: SweepCompareOutput) {
  const lines = [`sweep ${sweep.sweep}${sweep.shared ? ` (shared stages in ${sweep.shared})` : ''}`];
  for (const s of sweep.settings) lines.push(`  ${s.label || '(the recipe as written)'}: ${s.runs.map((r) => `${r.id} seed ${r.seed} ${r.status}`).join(', ')}`);
  console.log(lines.join('\n') + '\n');
  const cell = (v: { mean: number; sd: number; n: number } | null) => (v === null ? '—' : `${formatNumber(v.mean)} ± ${formatNumber(v.sd)} (${v.n})`);
  console.log(table(['stage', 'metric', ...sweep.settings.map((s) => s.label || 'recipe')], sweep.metrics.map((m) => [m.stage, m.name, ...m.values.map(cell)])));
}
