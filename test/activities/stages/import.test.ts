// The import and export activities on their own (MockActivityEnvironment, the real engine and
// artifact store): an imported checkpoint holds the folder's tensors bit for bit; a folder whose
// files changed since the recipe was loaded, or whose shapes contradict its config.json, is refused
// without a retry, naming it; a model with SLoRB branches exports to ONNX but is refused in
// Hugging Face layout.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';

import { checkpointDigest } from '../../../kernels/hf/digest';
import { loadCheckpoint } from '../../../kernels/checkpoint';
import { writeSafetensors } from '../../../kernels/safetensors';
import type { StageOutput, StageTask } from '../../../schemas/pipeline';
import { Recipe } from '../../../schemas/recipe';
import { asInputs, byteLevelTokenizer, llamaConfig, llamaTensors, type LlamaDims } from '../../kernels/hf/helpers';
import { activityEnv, artifact, computeFixture, fakeWorkflow } from './helpers';

const { home, activities } = computeFixture('import-activity');
const DIMS: LlamaDims = { layers: 1, dim: 16, heads: 2, hidden: 32, vocab: 257, context: 16, eps: 1e-6, theta: 10000 };
const tensors = llamaTensors(DIMS, 3);

async function writeFolder(name: string, config: object): Promise<string> {
  const dir = path.join(home, name);
  fs.mkdirSync(dir);
  await writeSafetensors(path.join(dir, 'model.safetensors'), asInputs(tensors), { format: 'pt' });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(byteLevelTokenizer([])));
  return dir;
}

function recipeFor(dir: string, sha256: string, stages: object[]): Recipe {
  const tokenizer = { file: path.join(dir, 'tokenizer.json'), sha256: checkpointDigest(dir).files.find((f) => f.name === 'tokenizer.json')!.sha256, vocab: 257 };
  return Recipe.parse({
    name: 'import-activity',
    model: { family: 'llama', layers: 1, dim: 16, heads: 2, context: 16, mlpRatio: 2, tokenizer, normEps: 1e-6, import: { path: dir, sha256 } },
    data: { corpus: 'moby-dick', train: { items: [3, 6] }, eval: { tail: { corpus: 'moby-dick', items: [130, 131] } } },
    stages,
  });
}

const task = (recipe: Recipe, stageId: string, inputs: Record<string, StageOutput> = {}): StageTask => ({ runId: 'r', recipe, stageId, inputs, cacheKey: 'k', resumeFrom: null });
const failure = (promise: Promise<unknown>) => promise.then(() => assert.fail('expected the activity to fail'), (e: unknown) => e as ApplicationFailure);

let folder: string;
before(async () => {
  folder = await writeFolder('good', llamaConfig(DIMS));
});

describe('the import activity', () => {
  it('stores the folder tensors bit for bit, in sieve names', async () => {
    const recipe = recipeFor(folder, checkpointDigest(folder).sha256, [{ id: 'base', kind: 'import' }]);
    const { output } = await activityEnv(fakeWorkflow().client).run(activities.import, task(recipe, 'base'));
    const { sha256 } = artifact(output, 'model');
    const state = await loadCheckpoint(path.join(home, 'artifacts', sha256.slice(0, 2), sha256));
    const read = (name: string) => {
      const t = state.tensors.find((e) => e.name === name)!;
      return state.params.subarray(t.offset, t.offset + t.size);
    };
    assert.deepEqual(read('tok_emb.weight'), tensors.get('model.embed_tokens.weight')!.data);
    assert.deepEqual(read('blocks.0.mlp.down.weight'), tensors.get('model.layers.0.mlp.down_proj.weight')!.data);
    assert.equal(output.metrics['import/params'], state.params.length);
  });

  it('refuses a folder whose files changed since the recipe was loaded, without a retry', async () => {
    const recipe = recipeFor(folder, 'f'.repeat(64), [{ id: 'base', kind: 'import' }]);
    const err = await failure(activityEnv(fakeWorkflow().client).run(activities.import, task(recipe, 'base')));
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /good changed since the recipe was loaded \(its files' digest is [0-9a-f]{12}…, the run recorded ffffffffffff…\)/);
  });

  it('refuses weights whose shapes contradict config.json, naming the tensor', async () => {
    const wider = await writeFolder('wider', llamaConfig({ ...DIMS, hidden: 48 }));
    const recipe = recipeFor(wider, checkpointDigest(wider).sha256, [{ id: 'base', kind: 'import' }]);
    const err = await failure(activityEnv(fakeWorkflow().client).run(activities.import, task(recipe, 'base')));
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /mlp\.(gate|up|down)_proj\.weight/);
  });
});

describe('the export activity', () => {
  it('exports a model with SLoRB branches to ONNX, and refuses it in Hugging Face layout', async () => {
    const recipe = recipeFor(folder, checkpointDigest(folder).sha256, [
      { id: 'base', kind: 'import' },
      { id: 'ast', kind: 'sparse-train', method: 'ast', from: 'base', slorbK: 4, steps: 2, batch: 2, lr: 1e-3, maskEvery: 1 },
      { id: 'onnx', kind: 'export', from: 'ast' },
      { id: 'hf', kind: 'export', from: 'ast', format: 'safetensors' },
    ]);
    const base = (await activityEnv(fakeWorkflow().client).run(activities.import, task(recipe, 'base'))).output;
    const ast = (await activityEnv(fakeWorkflow().client).run(activities['sparse-train'], task(recipe, 'ast', { base }))).output;
    const { output } = await activityEnv(fakeWorkflow().client).run(activities.export, task(recipe, 'onnx', { ast }));
    assert.equal(artifact(output, 'export').kind, 'onnx');
    const err = await failure(activityEnv(fakeWorkflow().client).run(activities.export, task(recipe, 'hf', { ast })));
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /SLoRB branches \(slorbK = 4\), have no place among LlamaForCausalLM's tensors; the ONNX export keeps them/);
  });
});
