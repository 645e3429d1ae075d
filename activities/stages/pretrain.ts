// The `pretrain` stage: dense next-token training of the recipe's model on its train split, from
// the seed or continuing the model (and optimizer state) of the stage named in `from`. Everything
// a training stage shares (resume, checkpoints, divergence, the output) is
// activities/train/stage.ts. Its definition: schemas/stages/pretrain.ts.

import { stageSeed } from '../../schemas/fields';
import { Model } from '../../kernels';
import { inputModel, type StageRun } from '../compute';
import { continuationSeed, runTrainingStage, trainingData } from '../train/stage';
import { engineConfig, readTrainingCheckpoint } from '../train/model-state';

export const pretrain: StageRun<'pretrain'> = async (deps, ctx, task, stage) => {
  const { recipe } = task;
  const data = trainingData(stage, task);
  const model = Model.create(engineConfig(recipe.model), { threads: deps.threads, device: recipe.device });
  ctx.onCancel(() => model.cancel());
  try {
    return await runTrainingStage(deps, ctx, task, stage, data, {
      model,
      fresh: async (events) => {
        if (stage.from === undefined) {
          model.init(stageSeed(stage, recipe));
          return { samplerSeed: stageSeed(stage, recipe) };
        }
        const { modelStep } = await readTrainingCheckpoint(await inputModel(deps, task, stage.from), model);
        events.push({ type: 'continued', at: new Date().toISOString(), payload: { from: stage.from, optimizerStep: modelStep } });
        return { samplerSeed: continuationSeed(stageSeed(stage, recipe), modelStep) };
      },
      prepare: async () => {},
      state: () => null,
    });
  } finally {
    model.dispose();
  }
};
