// Stage kind `prune`: one-shot 2:4 conversion of a model (METHODS.md §1.3, §2.6): in the chosen
// scope, each group of four weights along a linear layer's input dimension keeps its two largest
// magnitudes (`magnitude`), or each 4×4 block takes the best of the 90 patterns that are 2:4 along
// both dimensions (`transposable`). The output is exactly 2:4 in scope, with its masks.
// Its activity: activities/stages/prune.ts.
import { z } from 'zod';
import { wrongType } from '../fields';
import { inferenceMemory } from '../memory';
import { defineStage, StageId, stageObject } from './define';

/** Which block linear weights are made 2:4: `ffn` (the MLP), `attn` (qkv and out projections), `all`. */
export const SparsityScope = z.enum(['ffn', 'attn', 'all'], { error: wrongType('expected `scope`: ffn, attn or all') });
export type SparsityScope = z.infer<typeof SparsityScope>;

export const MaskMethod = z.enum(['magnitude', 'transposable'], { error: wrongType('expected `method`: magnitude or transposable') });
export type MaskMethod = z.infer<typeof MaskMethod>;

export const Prune = stageObject('prune', {
  id: StageId,
  kind: z.literal('prune'),
  from: StageId.describe('the model to convert'),
  method: MaskMethod.default('magnitude').describe(
    'magnitude: the two largest |w| of each group of four along the input dimension; transposable: per 4×4 block, the best pattern that is 2:4 along both dimensions',
  ),
  scope: SparsityScope.default('ffn').describe('which block linear weights become 2:4: ffn, attn or all'),
});
export type Prune = z.infer<typeof Prune>;

export const prune = defineStage({
  kind: 'prune',
  schema: Prune,
  produces: 'model',
  accepts: ['import', 'pretrain', 'prune', 'sparse-train'],
  reads: () => ({ train: false, eval: [] }),
  // A deterministic function of its input model.
  seeded: false,
  steps: () => null,
  memory: (_stage, recipe, threads) => inferenceMemory(recipe.model, 1, threads),
  activity: { startToCloseSec: 86_400, heartbeatSec: 60 },
});
