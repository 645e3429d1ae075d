// `sieve compare <run> <run>...`: runs side by side — which recipe settings differ (every default
// filled in, so an omitted key that took its default still compares), each stage's outcome and
// compute time, and every final metric. Reads SQLite only.

import { createArtifactStore } from '../../activities/store/artifacts';
import { openDb } from '../../activities/store/db';
import { getRun } from '../read-models';
import { reconcileHome } from '../reconcile';
import type { CompareOutput, ShowOutput } from '../../schemas/cli';
import { formatNumber } from './_summary';
import { NotFoundError, defineCommand, formatDuration, jsonOption, printJson, sieveHome, table } from './_shared';

export default defineCommand({
  name: 'compare',
  description: 'compare runs: recipe differences, stage outcomes, metrics side by side',
  positionals: ['<run>', '<run>...'],
  options: { ...jsonOption },
  async run({ positionals: ids, values }) {
    const home = sieveHome();
    await reconcileHome(home);
    const { db, close } = openDb({ home });
    let runs: ShowOutput[];
    try {
      const store = createArtifactStore(home);
      runs = ids.map((id) => {
        const run = getRun(db, store, id);
        if (!run) throw new NotFoundError(`no run "${id}" in ${home}; \`sieve history\` lists the runs.`);
        return run;
      });
    } finally {
      close();
    }
    const result = compareRuns(runs);
    if (values.json) return printJson(result);
    printComparison(result);
  },
});

export function compareRuns(runs: ShowOutput[]): CompareOutput {
  const flat = runs.map((r) => flattenRecipe(r.recipe));
  const paths = unique(flat.flatMap((f) => [...f.keys()]));
  const recipe = paths
    .filter((path) => new Set(flat.map((f) => f.get(path) ?? 'absent')).size > 1)
    .map((path) => ({ path, values: flat.map((f) => (f.has(path) ? JSON.parse(f.get(path)!) : null)) }));

  const stageIds = unique(runs.flatMap((r) => r.stages.map((s) => s.id)));
  const stages = stageIds.map((id) => ({
    id,
    runs: runs.map((r) => {
      const s = r.stages.find((x) => x.id === id);
      return s ? { status: s.status, computeMs: s.timings.computeMs, reusedFrom: s.reusedFrom } : null;
    }),
  }));

  const keys = unique(runs.flatMap((r) => r.stages.flatMap((s) => Object.keys(s.metrics).map((name) => JSON.stringify([s.id, name])))));
  const metrics = keys.map((key) => {
    const [stage, name] = JSON.parse(key) as [string, string];
    return { stage, name, values: runs.map((r) => r.stages.find((s) => s.id === stage)?.metrics[name] ?? null) };
  });
  return {
    runs: runs.map(({ id, name, status, recipeHash, codeVersion, createdAt }) => ({ id, name, status, recipeHash, codeVersion, createdAt })),
    recipe,
    stages,
    metrics,
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

function printComparison(c: CompareOutput) {
  const header = ['', ...c.runs.map((r) => r.id)];
  // Derived defaults carry float noise (0.003 / 10); twelve digits show what was meant.
  const setting = (v: unknown) => (v === null ? '-' : typeof v === 'string' ? v : typeof v === 'number' ? String(Number(v.toPrecision(12))) : JSON.stringify(v));
  const metric = (v: number | null) => (v === null ? '-' : formatNumber(v));
  const sections = [
    table(header, [
      ['status', ...c.runs.map((r) => r.status)],
      ['created', ...c.runs.map((r) => r.createdAt.slice(0, 19).replace('T', ' '))],
      ['code', ...c.runs.map((r) => r.codeVersion)],
    ]),
    c.recipe.length ? `recipe differences\n${table(header, c.recipe.map((d) => [`  ${d.path}`, ...d.values.map(setting)]))}` : 'recipes: identical',
    `stages\n${table(
      header,
      c.stages.map((s) => [`  ${s.id}`, ...s.runs.map((r) => (r ? `${r.status} ${r.reusedFrom ? '' : formatDuration(r.computeMs)}`.trim() : '-'))]),
    )}`,
  ];
  if (c.metrics.length) sections.push(`metrics\n${table(header, c.metrics.map((m) => [`  ${m.stage}: ${m.name}`, ...m.values.map(metric)]))}`);
  console.log(sections.join('\n\n'));
}

const unique = <T>(xs: T[]): T[] => [...new Set(xs)];
