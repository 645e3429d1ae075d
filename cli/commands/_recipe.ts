// Loading a recipe file for `run` and `validate`: read, parse and validate it (schemas/), make
// file paths absolute (workers may run elsewhere, in another directory), and check the data
// (corpus ranges that select nothing, missing or irregular files, streams shorter than one
// window) and, when this machine runs the stages, that each fits its memory, before anything is
// submitted or written.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveData } from '../../activities/data/splits';
import { recipeHash } from '../../activities/store/hash';
import type { DataSource } from '../../schemas/data';
import { Seed, type Recipe, type RecipeIssue } from '../../schemas/recipe';
import { parseRecipe } from '../../schemas/recipe-text';
import { expandModel, modelSectionOf, readModelSources } from '../model-sources';
import { memoryShortfall } from '../../schemas/stages';

/** A recipe that cannot run: the message for people, the issues (path, line:column) for `--json`. */
export class RecipeError extends Error {
  readonly issues: RecipeIssue[];
  constructor(message: string, issues?: RecipeIssue[]) {
    super(message);
    this.name = 'RecipeError';
    this.issues = issues ?? [{ path: '', message, line: null, column: null }];
  }
}

export interface LoadedRecipe {
  recipe: Recipe;
  /** sha256 of the recipe's canonical JSON (after defaults and path resolution). */
  hash: string;
  file: string;
}

/** Recipes are a few kilobytes; a larger file is a mistake, and parsing it could exhaust memory. */
const MAX_RECIPE_BYTES = 1 << 20;

/** Settings given on the command line instead of the file's: the seed (`sieve run --seed`), values at recipe paths (a sweep's `--set`). */
export interface RecipeOverrides {
  seed?: number;
  /** Recipe path (`stages.ft.lr`, `model.dim`) → value, set before the recipe is checked. */
  set?: Record<string, unknown>;
}

export async function loadRecipeFile(file: string, overrides: RecipeOverrides = {}): Promise<LoadedRecipe> {
  let text: string;
  try {
    const stats = fs.statSync(file);
    // Checked before opening: a FIFO would block, a device would never end.
    if (!stats.isFile()) throw new RecipeError(`recipe file ${file} is not a regular file.`);
    if (stats.size > MAX_RECIPE_BYTES) throw new RecipeError(`recipe file ${file} is ${stats.size.toLocaleString('en-US')} bytes; a recipe is at most 1 MiB.`);
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof RecipeError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new RecipeError(code === 'ENOENT' ? `recipe file ${file} does not exist.` : `cannot read recipe file ${file}: ${(err as Error).message}`);
  }
  const baseDir = path.dirname(path.resolve(file));
  const sources = await readModelSources(modelSectionOf(text), baseDir);
  const set = Object.entries(overrides.set ?? {});
  const parsed = parseRecipe(text, file, { expand: (value) => expandModel(set.reduce((v, [p, x]) => setPath(v, p, x), value), sources) });
  if (!parsed.ok) throw new RecipeError(`${file} is not a valid recipe:\n${parsed.message}`, parsed.issues);
  const recipe = absolutizePaths(withOverrides(parsed.recipe, overrides), baseDir);
  checkData(recipe);
  checkMemory(recipe);
  return { recipe, hash: recipeHash(recipe), file: path.resolve(file) };
}

/** The recipe with the command line's settings in place of the file's, checked like the file's own. */
function withOverrides(recipe: Recipe, overrides: RecipeOverrides): Recipe {
  if (overrides.seed === undefined) return recipe;
  const checked = Seed.safeParse(overrides.seed);
  if (!checked.success) throw new RecipeError(`--seed ${overrides.seed} is not a seed: ${checked.error.issues[0].message}.`);
  return { ...recipe, seed: checked.data };
}

/** Relative `files` paths are relative to the recipe file, not to wherever sieve was started. */
function absolutizePaths(recipe: Recipe, baseDir: string): Recipe {
  const fix = <S extends DataSource>(source: S): S =>
    source.corpus === 'files' ? { ...source, paths: source.paths.map((p) => path.resolve(baseDir, p)) } : source;
  const data = { ...recipe.data, eval: Object.fromEntries(Object.entries(recipe.data.eval).map(([k, v]) => [k, fix(v)])) };
  if (data.corpus === 'files') data.train = { ...data.train, paths: data.train.paths.map((p: string) => path.resolve(baseDir, p)) };
  return { ...recipe, data: data as Recipe['data'] };
}

function checkData(recipe: Recipe) {
  try {
    resolveData(recipe.data, { tokenizer: recipe.model.tokenizer, context: recipe.model.context });
  } catch (err) {
    throw new RecipeError(`${(err as Error).message}.`.replace(/\.\.$/, '.'));
  }
}

/**
 * Each stage's memory estimate against this machine's memory, when this machine runs it: on CPU
 * with the embedded server. Workers elsewhere (TEMPORAL_ADDRESS, a GPU) check against their own
 * machine before they allocate anything.
 */
function checkMemory(recipe: Recipe) {
  if (process.env.TEMPORAL_ADDRESS || recipe.device !== 'cpu') return;
  const threads = Number(process.env.OMP_NUM_THREADS) || os.availableParallelism();
  const issues = recipe.stages.flatMap((stage, i): RecipeIssue[] => {
    const shortfall = memoryShortfall(stage, recipe, { threads, memoryBytes: os.totalmem() });
    return shortfall ? [{ path: `stages[${i}]`, message: `${shortfall}.`, line: null, column: null }] : [];
  });
  if (issues.length) throw new RecipeError(issues.map((i) => `${i.path}: ${i.message}`).join('\n'), issues);
}

/** The raw recipe with `path` set to `value`: `stages.<id>.<key>…` finds the stage by id; other paths are keys. */
export function setPath(raw: unknown, path: string, value: unknown): unknown {
  const keys = path.split('.');
  const root = structuredClone(raw) as Record<string, unknown>;
  let node: unknown = root;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    const last = i === keys.length - 1;
    if (Array.isArray(node)) {
      const stage = node.find((s) => (s as { id?: unknown })?.id === key);
      if (!stage) throw new RecipeError(`--set ${path}: the recipe has no stage "${key}"`);
      if (last) throw new RecipeError(`--set ${path}: name a key of stage ${key}, not the stage itself`);
      node = stage;
      continue;
    }
    if (typeof node !== 'object' || node === null) throw new RecipeError(`--set ${path}: ${keys.slice(0, i).join('.')} is not a section of the recipe`);
    const obj = node as Record<string, unknown>;
    if (last) obj[key] = value;
    else {
      obj[key] ??= {};
      node = obj[key];
    }
  }
  return root;
}
