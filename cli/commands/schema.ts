// `sieve schema`: the recipe's JSON Schema, for editor completion and validation
// (e.g. `# yaml-language-server: $schema=./recipe.schema.json`).

import { recipeJsonSchema } from '../../schemas/recipe';
import { defineCommand, printJson } from './_shared';

export default defineCommand({
  name: 'schema',
  description: "print the recipe's JSON Schema",
  positionals: [],
  options: {},
  async run() {
    printJson(recipeJsonSchema());
  },
});
