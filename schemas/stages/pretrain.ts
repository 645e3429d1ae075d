// Stage kind `pretrain`: dense next-token training with AdamW, from the seed or continuing the
// model (and optimizer state) of an earlier pretrain stage. Its activity: activities/stages/pretrain.ts.
import { z } from 'zod';
import { trainingMemory } from '../memory';
import { defineStage, StageId, stageObject } from './define';
import { checkTraining, resolveTraining, trainingKeys } from './training';

export const Pretrain = stageObject('pretrain', {
  id: StageId,
  kind: z.literal('pretrain'),
  from: StageId.optional().describe(
    'an earlier pretrain stage to continue from (its final weights and optimizer state); absent = fresh init from the seed',
  ),
  ...trainingKeys,
})
  .superRefine(checkTraining)
  .transform(resolveTraining);
export type Pretrain = z.infer<typeof Pretrain>;

export const pretrain = defineStage({
  kind: 'pretrain',
  schema: Pretrain,
  produces: 'model',
  accepts: ['import', 'pretrain'],
  // Evaluation sets are read only when the stage evaluates while training.
  reads: (stage, recipe) => ({ train: true, eval: stage.evalEvery === null ? [] : Object.keys(recipe.data.eval) }),
  seeded: true,
  steps: (stage) => stage.steps,
  memory: (stage, recipe, threads) => trainingMemory(recipe.model, stage.batch / stage.accum, threads),
  // A stage may legitimately train for weeks; liveness is policed by the heartbeat timeout.
  activity: { startToCloseSec: 30 * 86_400, heartbeatSec: 60 },
});
