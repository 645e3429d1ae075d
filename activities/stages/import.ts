// The `import` stage: the Hugging Face checkpoint named by the recipe's `model.import`, read into
// the engine's tensor names and layouts (kernels/hf/) and stored as a sieve model. The folder must
// hold the bits the recipe was loaded against (the digest `model.import.sha256`); a folder that
// changed since is refused rather than silently imported. Its definition: schemas/stages/import.ts.

import path from 'node:path';

import { Model } from '../../kernels';
import { folderDigest } from '../../kernels/hf/digest';
import { importHf } from '../../kernels/hf';
import { badInput, type StageRun } from '../compute';
import { engineConfig, writeTrainingCheckpoint } from '../train/model-state';
import { writeToStore } from '../train/stage';

export const importModel: StageRun<'import'> = async (deps, ctx, task, stage) => {
  const began = performance.now();
  const { recipe } = task;
  const source = recipe.model.import;
  if (typeof source !== 'object') throw badInput(new Error(`stage ${stage.id}: \`model.import\` was not resolved to a folder and digest; submit the recipe through sieve`));
  ctx.heartbeat({ step: 0, steps: 1, loss: null, tokensPerSec: null, etaSec: null, checkpoint: null });
  let imported: Awaited<ReturnType<typeof importHf>>;
  try {
    imported = await importHf(source.path);
    // The digest of the bytes just read, so what is imported is exactly what was checked.
    const digest = folderDigest(imported.sources.map((s) => ({ name: path.relative(source.path, s.path), sha256: s.sha256 })));
    if (digest !== source.sha256) {
      throw new Error(`${source.path} changed since the recipe was loaded (its files' digest is ${digest.slice(0, 12)}…, the run recorded ${source.sha256.slice(0, 12)}…); run the recipe again to import the folder as it is now`);
    }
  } catch (err) {
    throw badInput(err);
  }
  const model = Model.create(engineConfig(recipe.model), { threads: deps.threads, device: recipe.device });
  try {
    for (const t of model.tensors) {
      const data = imported.tensors.get(t.name);
      if (!data) throw badInput(new Error(`${source.path}: the checkpoint has no tensor for ${t.name}`));
      model.writeTensor(t.name, data);
    }
    if (ctx.isCancelled()) ctx.throwCancelled();
    const stored = await writeToStore(deps, (file) => writeTrainingCheckpoint(file, model, null, null, null));
    return {
      artifacts: [{ sha256: stored.sha256, bytes: stored.bytes, kind: 'checkpoint', role: 'model' }],
      metrics: { 'import/params': model.numParams },
      computeMs: performance.now() - began,
      events: [{ type: 'imported', at: new Date().toISOString(), payload: { path: source.path, sha256: source.sha256, files: imported.sources } }],
    };
  } finally {
    model.dispose();
  }
};
