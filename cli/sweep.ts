// Sweeps: one recipe over a grid (`sieve run <recipe> --seeds 1,2,3 --set stages.ft.lr=1e-3,3e-3`).
// The grid is every combination of the seeds and of each --set's values; each point is the recipe
// with those values in place, loaded and checked like any recipe. The stages whose settings and
// inputs are the same at every point are the sweep's shared stages: they run once, as a run of
// their own, and every point takes their outputs (workflows/sweep.ts).

import { parse as parseYaml } from 'yaml';
import { recipeHash, sha256Hex } from '../activities/store/hash';
import { canonicalJson } from '../schemas/canonical';
import type { SweepPoint } from '../schemas/pipeline';
import { stageCacheConfig, stageInputs, topologicalOrder, type Recipe } from '../schemas/recipe';
import { loadRecipeFile } from './commands/_recipe';
import { UsageError } from './commands/_shared';

export interface GridSpec {
  /** null: the recipe's own seed only. */
  seeds: number[] | null;
  /** Recipe paths and their values, in the order given. */
  set: { path: string; values: unknown[] }[];
}

/** `--seeds 1,2,3` and `--set path=v1,v2` (repeatable) as a grid; null when neither is given. */
export function parseGrid(seeds: string | undefined, set: string[] | undefined): GridSpec | null {
  if (seeds === undefined && (set === undefined || set.length === 0)) return null;
  let seedList: number[] | null = null;
  if (seeds !== undefined) {
    const given = seeds.split(',').map((s) => s.trim());
    if (given.some((s) => !/^-?\d+$/.test(s))) throw new UsageError(`--seeds must be whole numbers separated by commas, got "${seeds}".`);
    seedList = given.map(Number);
    if (new Set(seedList).size !== seedList.length) throw new UsageError(`--seeds lists a seed twice: "${seeds}".`);
  }
  const assignments = (set ?? []).map((arg) => {
    const eq = arg.indexOf('=');
    if (eq <= 0 || eq === arg.length - 1) throw new UsageError(`--set takes path=value[,value…] (e.g. stages.ft.lr=1e-3,3e-3), got "${arg}".`);
    const path = arg.slice(0, eq);
    if (path === 'seed') throw new UsageError('use --seeds for the seed, not --set seed=…');
    const values = arg.slice(eq + 1).split(',').map((v) => parseYaml(v.trim()) as unknown);
    return { path, values };
  });
  const paths = assignments.map((a) => a.path);
  const twice = paths.find((p, i) => paths.indexOf(p) !== i);
  if (twice) throw new UsageError(`--set names ${twice} twice; give one --set with all its values.`);
  return { seeds: seedList, set: assignments };
}

/** Every point of the grid, in order: seeds vary fastest. */
export function gridPoints(grid: GridSpec, recipeSeed: number): Omit<SweepPoint, 'index'>[] {
  let combos: Record<string, unknown>[] = [{}];
  for (const { path, values } of grid.set) combos = combos.flatMap((c) => values.map((v) => ({ ...c, [path]: v })));
  const seeds = grid.seeds ?? [recipeSeed];
  return combos.flatMap((set) => seeds.map((seed) => ({ seed, set })));
}

export interface SweepPlan {
  base: Recipe;
  points: { recipe: Recipe; point: SweepPoint }[];
  /** The stages every point shares, in the recipe's order. */
  shared: string[];
  /** sha256 over the points' recipe hashes: what identifies the sweep. */
  hash: string;
}

/** Loads every point of the grid as a recipe and works out the shared stages. */
export async function planSweep(file: string, grid: GridSpec): Promise<SweepPlan> {
  const { recipe: base } = await loadRecipeFile(file);
  const points: SweepPlan['points'] = [];
  for (const [index, p] of gridPoints(grid, base.seed).entries()) {
    const { recipe } = await loadRecipeFile(file, { seed: p.seed, set: p.set });
    points.push({ recipe, point: { index, ...p } });
  }
  if (points.length < 2) throw new UsageError(`the grid has ${points.length} point: give several seeds or values to sweep over.`);
  const shared = sharedStages(points.map((p) => p.recipe));
  if (shared.length === base.stages.length) throw new UsageError('every point of the grid is the same experiment: the values set change no stage.');
  return { base, points, shared, hash: sha256Hex(canonicalJson(points.map((p) => recipeHash(p.recipe)))) };
}

/** Stages with the same cache settings at every point whose inputs are shared too. */
export function sharedStages(recipes: readonly Recipe[]): string[] {
  const shared = new Set<string>();
  for (const stage of topologicalOrder(recipes[0])) {
    const config = (r: Recipe) => canonicalJson(stageCacheConfig(r, r.stages.find((s) => s.id === stage.id)!));
    const same = recipes.every((r) => config(r) === config(recipes[0]));
    if (same && stageInputs(stage).every((id) => shared.has(id))) shared.add(stage.id);
  }
  return recipes[0].stages.map((s) => s.id).filter((id) => shared.has(id));
}

/** The recipe cut down to the shared stages. */
export function sharedRecipe(recipe: Recipe, shared: readonly string[]): Recipe {
  return { ...recipe, stages: recipe.stages.filter((s) => shared.includes(s.id)) };
}

/** How a point reads in tables: its settings and seed. */
export function pointLabel(point: Pick<SweepPoint, 'seed' | 'set'>, withSeed = true): string {
  const parts = Object.entries(point.set).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  if (withSeed) parts.push(`seed=${point.seed}`);
  return parts.join(' ') || `seed=${point.seed}`;
}
