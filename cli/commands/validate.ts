// `sieve validate <recipe>`: everything `sieve run` checks before submitting, and nothing else:
// no server, no database, no files written.

import { topologicalOrder } from '../../schemas/recipe';
import { loadRecipeFile } from './_recipe';
import { defineCommand, jsonOption, printJson } from './_shared';

export default defineCommand({
  name: 'validate',
  description: 'check a recipe (schema, stage graph, data) without running it',
  positionals: ['<recipe>'],
  options: { ...jsonOption },
  async run({ positionals: [file], values }) {
    const { recipe, hash } = loadRecipeFile(file);
    const order = topologicalOrder(recipe).map((s) => s.id);
    if (values.json) {
      printJson({ valid: true, name: recipe.name, hash, stages: order });
      return;
    }
    console.log(`${file}: valid recipe "${recipe.name}" (${recipe.model.family}, ${recipe.stages.length} stages: ${order.join(' → ')})`);
  },
});
