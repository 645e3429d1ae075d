// The `prune` stage: one-shot 2:4 conversion of its input model. In scope, the engine computes
// each weight's mask (magnitude, or transposable), records how much magnitude it keeps, zeroes the
// rest, and the stage checks the result is exactly 2:4 before it hands it on, masks included.
// Its definition: schemas/stages/prune.ts.

import { inputModel, type StageRun } from '../compute';
import { modelFromCheckpoint, writeTrainingCheckpoint } from '../train/model-state';
import { writeToStore } from '../train/stage';
import { requireTwoFour, sparseWeights } from '../train/sparsity';

export const prune: StageRun<'prune'> = async (deps, ctx, task, stage) => {
  const began = performance.now();
  const model = await modelFromCheckpoint(await inputModel(deps, task, stage.from), { threads: deps.threads, device: task.recipe.device });
  ctx.onCancel(() => model.cancel());
  try {
    const names = sparseWeights(model, stage.scope);
    ctx.heartbeat({ step: 0, steps: 1, loss: null, tokensPerSec: null, etaSec: null, checkpoint: null });
    await model.updateMasks(names, stage.method);
    if (ctx.isCancelled()) ctx.throwCancelled();
    const stats = model.maskStats(names);
    const metrics: Record<string, number> = {
      'prune/retained_magnitude': 1 - stats.reduce((a, s) => a + s.prunedAbs, 0) / stats.reduce((a, s) => a + s.totalAbs, 0),
      'prune/weights': names.reduce((n, name) => n + model.info(name).size, 0),
    };
    names.forEach((name, i) => (metrics[`prune/retained_magnitude/${name}`] = 1 - stats[i].prunedAbs / stats[i].totalAbs));
    for (const name of names) model.setTransform(name, { kind: 'mask' });
    await model.materialize();
    requireTwoFour(model, names, stage.method === 'transposable');

    const stored = await writeToStore(deps, (file) => writeTrainingCheckpoint(file, model, null, null, null));
    return {
      artifacts: [{ sha256: stored.sha256, bytes: stored.bytes, kind: 'checkpoint', role: 'model' }],
      metrics,
      computeMs: performance.now() - began,
      events: [],
    };
  } finally {
    model.dispose();
  }
};
