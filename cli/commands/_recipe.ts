// Loading a recipe file for `run` and `validate`: read, parse and validate it (schemas/), make
// file paths absolute (workers may run elsewhere, in another directory), and check the data
// (corpus ranges that select nothing, missing files, streams shorter than one window) before
// anything is submitted or written.

import fs from 'node:fs';
import path from 'node:path';
import { resolveData } from '../../activities/data/splits';
import { recipeHash } from '../../activities/store/hash';
import type { DataSource } from '../../schemas/data';
import type { Recipe } from '../../schemas/recipe';
import { parseRecipe } from '../../schemas/recipe-text';

export class RecipeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecipeError';
  }
}

export interface LoadedRecipe {
  recipe: Recipe;
  /** sha256 of the recipe's canonical JSON (after defaults and path resolution). */
  hash: string;
  file: string;
}

export function loadRecipeFile(file: string): LoadedRecipe {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new RecipeError(code === 'ENOENT' ? `recipe file ${file} does not exist.` : `cannot read recipe file ${file}: ${(err as Error).message}`);
  }
  const parsed = parseRecipe(text, file);
  if (!parsed.ok) throw new RecipeError(`${file} is not a valid recipe:\n${parsed.message}`);
  const recipe = absolutizePaths(parsed.recipe, path.dirname(path.resolve(file)));
  checkData(recipe);
  return { recipe, hash: recipeHash(recipe), file: path.resolve(file) };
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
