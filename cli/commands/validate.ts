// `sieve validate <recipe>`: everything `sieve run` checks before submitting, and nothing else:
// no server, no database, no files written.

import type { ValidateOutput } from '../../schemas/cli';
import { topologicalOrder } from '../../schemas/recipe';
import { loadRecipeFile, RecipeError } from './_recipe';
import { defineCommand, jsonOption, printJson } from './_shared';

export default defineCommand({
  name: 'validate',
  description: 'check a recipe (schema, stage graph, data, memory) without running it',
  positionals: ['<recipe>'],
  options: { ...jsonOption },
  async run({ positionals: [file], values }) {
    let loaded;
    try {
      loaded = await loadRecipeFile(file);
    } catch (err) {
      if (!(values.json && err instanceof RecipeError)) throw err;
      printJson({ ok: false, issues: err.issues } satisfies ValidateOutput);
      return 1;
    }
    const { recipe, hash } = loaded;
    const order = topologicalOrder(recipe).map((s) => s.id);
    if (values.json) return printJson({ ok: true, recipe, hash, order } satisfies ValidateOutput);
    console.log(`${file}: valid recipe "${recipe.name}" (${recipe.model.family}, ${recipe.stages.length} stages: ${order.join(' → ')})`);
  },
});
