// The `export` stage: its input model as files other tools read, stored as artifacts of the run
// (`sieve export` copies them out). `onnx`: one ONNX file with the recipe hash, the run and the
// stage lineage in its metadata. `safetensors`: a Hugging Face folder (model.safetensors,
// config.json, and the tokenizer.json of a model whose recipe has one). Its definition:
// schemas/stages/export.ts.

import fs from 'node:fs';
import path from 'node:path';

import { loadCheckpoint, type CheckpointState } from '../../kernels/checkpoint';
import { exportHf } from '../../kernels/hf';
import { exportOnnx } from '../../kernels/onnx/export';
import type { StageOutput, StageTask } from '../../schemas/pipeline';
import type { Recipe } from '../../schemas/recipe';
import { stageInputs } from '../../schemas/stages';
import { badInput, inputModel, type ComputeDeps, type StageRun } from '../compute';
import { recipeHash } from '../store/hash';
import { codeVersion } from '../store/provenance';

export const exportModel: StageRun<'export'> = async (deps, ctx, task, stage) => {
  const began = performance.now();
  const checkpoint = await loadCheckpoint(await inputModel(deps, task, stage.from));
  ctx.heartbeat({ step: 0, steps: 1, loss: null, tokensPerSec: null, etaSec: null, checkpoint: null });
  let artifacts: StageOutput['artifacts'];
  try {
    artifacts = stage.format === 'onnx' ? await storeOnnx(deps, task, stage.from, checkpoint) : await storeHfFolder(deps, task.recipe, checkpoint);
  } catch (err) {
    // The exporters refuse what they cannot express (a model with adapters in HF naming): the same on every attempt.
    throw badInput(err);
  }
  return { artifacts, metrics: {}, computeMs: performance.now() - began, events: [] };
};

/** What an exported ONNX model says about where it came from (its metadata_props). */
export function onnxProvenance(task: Pick<StageTask, 'runId' | 'recipe'>, from: string): Record<string, string> {
  return {
    'sieve.recipe': task.recipe.name,
    'sieve.recipe_hash': recipeHash(task.recipe),
    'sieve.run': task.runId,
    'sieve.stage': from,
    'sieve.lineage': lineage(task.recipe, from).join(' <- '),
    'sieve.code_version': codeVersion(),
  };
}

/** The stage and every stage it descends from, nearest first (a stage with several inputs lists each branch). */
function lineage(recipe: Recipe, id: string): string[] {
  const stage = recipe.stages.find((s) => s.id === id);
  if (!stage) return [id];
  const parents = stageInputs(stage);
  return [id, ...parents.flatMap((p) => lineage(recipe, p))];
}

async function storeOnnx(deps: ComputeDeps, task: StageTask, from: string, checkpoint: CheckpointState): Promise<StageOutput['artifacts']> {
  const stored = await deps.store.put(exportOnnx(checkpoint, { metadata: onnxProvenance(task, from) }));
  return [{ sha256: stored.sha256, bytes: stored.bytes, kind: 'onnx', role: 'export' }];
}

/** The folder's files as artifacts: model.safetensors is the stage's product, the rest ride along by name. */
async function storeHfFolder(deps: ComputeDeps, recipe: Recipe, checkpoint: CheckpointState): Promise<StageOutput['artifacts']> {
  const tmp = path.join(deps.store.home, 'artifacts', 'tmp');
  fs.mkdirSync(tmp, { recursive: true });
  const dir = fs.mkdtempSync(path.join(tmp, 'hf-'));
  try {
    const tokenizer = typeof recipe.model.tokenizer === 'object' ? recipe.model.tokenizer.file : undefined;
    const { files } = await exportHf(checkpoint, dir, { tokenizer });
    const artifacts: StageOutput['artifacts'] = [];
    for (const file of files) {
      const name = path.basename(file);
      const stored = await deps.store.put(file, { move: true });
      const kind = name === 'model.safetensors' ? 'hf-weights' : name === 'tokenizer.json' ? 'tokenizer' : 'hf-config';
      artifacts.push({ sha256: stored.sha256, bytes: stored.bytes, kind, role: name === 'model.safetensors' ? 'export' : `export/${name}` });
    }
    return artifacts;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
