// Stage kind `import`: the weights of the Hugging Face checkpoint named by the recipe's
// `model.import` (a GPT-2 or LLaMA folder: config.json, model.safetensors or shards with their
// index, tokenizer.json), as a sieve model. The architecture keys of `model:` were filled in from
// config.json when the recipe was loaded, with a digest of the folder's files; the stage refuses a
// folder whose files changed since. Its activity: activities/stages/import.ts.
import { z } from 'zod';
import { weightCopies } from '../memory';
import { defineStage, StageId, stageObject } from './define';

export const Import = stageObject('import', {
  id: StageId,
  kind: z.literal('import'),
});
export type Import = z.infer<typeof Import>;

export const importStage = defineStage({
  kind: 'import',
  schema: Import,
  produces: 'model',
  accepts: [],
  check: (_stage, recipe, report) => {
    if (recipe.model.import === undefined) report(['kind'], 'an import stage reads the checkpoint named by `model.import`, which this recipe does not set');
  },
  reads: () => ({ train: false, eval: [] }),
  // The checkpoint's bits, converted: nothing random.
  seeded: false,
  steps: () => null,
  // The checkpoint's tensors in float32 beside the model they are written into.
  memory: (_stage, recipe) => weightCopies(recipe.model, ['weights', 'the checkpoint read in float32']),
  activity: { startToCloseSec: 86_400, heartbeatSec: 60 },
});
