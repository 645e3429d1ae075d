// The 2:4 stages on their own (MockActivityEnvironment, the real engine and artifact store): prune
// and every sparse-train method produce exactly 2:4 weights in scope (srste's dense tail a dense
// model, on purpose), with their masks and sparsity metrics; a sparse-train stage cancelled
// mid-way and resumed gives the bits of an uninterrupted one, whatever the method's state (masks,
// β, schedules, teacher, SLoRB branches, scales, optimizer state).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import { readSafetensors, tensorData } from '../../../kernels/safetensors';
import type { StageOutput, StageTask } from '../../../schemas/pipeline';
import { Recipe } from '../../../schemas/recipe';
import { History } from '../../../activities/train/history';
import { activityEnv, artifact, computeFixture, fakeWorkflow } from './helpers';

const { home, activities } = computeFixture('sparse');
const stored = (sha: string) => `${home}/artifacts/${sha.slice(0, 2)}/${sha}`;

const METHOD_KEYS: Record<string, Record<string, unknown>> = {
  ste: { method: 'ste', maskEvery: 3 },
  srste: { method: 'srste', maskEvery: 3, lambda: 2e-4 },
  'srste-transposable': { method: 'srste', maskEvery: 3, transposable: true, scope: 'all' },
  'srste-dense-tail': { method: 'srste', maskEvery: 3, denseTail: 0.25 },
  sste: { method: 'sste', logEvery: 3, mvue: true },
  ast: { method: 'ast', maskEvery: 3, slorbK: 8, rampSteps: 4 },
  cast: { method: 'cast', maskEvery: 3, segments: 2, scope: 'ffn' },
};

const recipe = Recipe.parse({
  name: 'sparse-activity',
  seed: 4,
  model: { layers: 1, dim: 16, heads: 2, context: 16, tokenizer: 'bytes' },
  data: { corpus: 'moby-dick', train: { items: [3, 6] }, eval: { tail: { corpus: 'moby-dick', items: [130, 131] } } },
  stages: [
    { id: 'dense', kind: 'pretrain', steps: 8, batch: 4, lr: 0.01 },
    { id: 'pruned', kind: 'prune', from: 'dense', method: 'transposable', scope: 'all' },
    ...Object.entries(METHOD_KEYS).map(([id, keys]) => ({ id, kind: 'sparse-train', from: 'dense', steps: 12, batch: 4, lr: 0.005, checkpointEvery: 4, ...keys })),
    { id: 'scratch', kind: 'sparse-train', method: 'sste', steps: 6, batch: 4, lr: 0.005 },
  ],
});
const task = (stageId: string, inputs: Record<string, StageOutput>): StageTask => ({ runId: 'r', recipe, stageId, inputs, cacheKey: 'k', resumeFrom: null });

let dense: StageOutput;
before(async () => {
  dense = (await activityEnv(fakeWorkflow().client).run(activities.pretrain, task('dense', {}))).output;
});

/** The tensors whose masks the output model stores (a mask of all ones is not stored). */
async function storedMasks(output: StageOutput): Promise<string[]> {
  const file = await readSafetensors(stored(artifact(output, 'model').sha256));
  return file.tensors.filter((t) => t.name.startsWith('mask.')).map((t) => t.name.slice('mask.'.length));
}

/** Groups of four along rows (and columns) of every in-scope matrix with more than two nonzeros. */
async function violations(output: StageOutput, scope: 'ffn' | 'all', bothWays: boolean): Promise<number> {
  const file = await readSafetensors(stored(artifact(output, 'model').sha256));
  let bad = 0;
  for (const t of file.tensors) {
    const inScope = /\.(mlp\.(fc|proj)|attn\.(qkv|out))\.weight$/.test(t.name) && (scope === 'all' || t.name.includes('.mlp.'));
    if (!inScope || t.name.startsWith('optim.') || t.name.startsWith('mask.')) continue;
    const [rows, cols] = t.shape;
    const w = tensorData(t as typeof t & { dtype: 'F32' });
    for (let r = 0; r < rows; r++) for (let g = 0; g < cols; g += 4) bad += [0, 1, 2, 3].filter((k) => w[r * cols + g + k] !== 0).length > 2 ? 1 : 0;
    if (bothWays) for (let c = 0; c < cols; c++) for (let g = 0; g < rows; g += 4) bad += [0, 1, 2, 3].filter((k) => w[(g + k) * cols + c] !== 0).length > 2 ? 1 : 0;
  }
  return bad;
}

async function historyOf(output: StageOutput) {
  const { readFileSync } = await import('node:fs');
  return History.parse(JSON.parse(readFileSync(stored(artifact(output, 'history').sha256), 'utf8')));
}

describe('prune', () => {
  it('makes the scope exactly 2:4 (both ways for a transposable mask) and records the kept magnitude', async () => {
    const { output } = await activityEnv(fakeWorkflow().client).run(activities.prune, task('pruned', { dense }));
    assert.equal(await violations(output, 'all', true), 0);
    assert.equal((await storedMasks(output)).length, 4, 'every in-scope weight (qkv, out, fc, proj) has its mask stored');
    const retained = output.metrics['prune/retained_magnitude'];
    assert.ok(retained > 0.5 && retained < 1, `a 2:4 mask keeps more than half the magnitude, not all of it (${retained})`);
    assert.ok(output.metrics['prune/retained_magnitude/blocks.0.mlp.fc.weight'] > 0.5);
  });
});

describe('sparse-train', () => {
  for (const [id, keys] of Object.entries(METHOD_KEYS)) {
    it(`${id}: ${id === 'srste-dense-tail' ? 'a dense model, on purpose' : 'exactly 2:4 in scope'}, with its sparsity metrics`, async () => {
      const { output } = await activityEnv(fakeWorkflow().client).run(activities['sparse-train'], task(id, { dense }));
      const scope = (keys.scope as 'ffn' | 'all' | undefined) ?? (keys.method === 'ast' ? 'all' : 'ffn');
      if (id === 'srste-dense-tail') {
        assert.equal(output.metrics['sparse/two_four'], 0);
        assert.ok(output.events.some((e) => e.type === 'dense-output'));
        assert.ok((await violations(output, scope, false)) > 0, 'the dense tail made the model dense again');
        assert.deepEqual(await storedMasks(output), [], 'a dense output carries no stale masks');
      } else {
        assert.equal(output.metrics['sparse/two_four'], 1);
        assert.equal(await violations(output, scope, keys.transposable === true), 0);
        const masked = await storedMasks(output);
        const inScope = (await readSafetensors(stored(artifact(output, 'model').sha256))).tensors.filter(
          (t) => /^blocks\.\d+\.(mlp\.(fc|proj)|attn\.(qkv|out))\.weight$/.test(t.name) && (scope === 'all' || t.name.includes('.mlp.')),
        );
        for (const t of inScope) assert.ok(masked.includes(t.name), `${t.name} has its mask stored`);
      }
      const history = await historyOf(output);
      const measured = history.filter((r) => r.metrics?.['sparse/flip_rate'] !== undefined);
      assert.deepEqual(measured.map((r) => r.step), [4, 7, 10].filter((s) => !(id === 'srste-dense-tail' && s >= 10)), 'measured at every refresh');
      for (const r of measured) {
        const rate = r.metrics!['sparse/flip_rate'];
        assert.ok(rate >= 0 && rate <= 1, `flip rate ${rate} in [0, 1]`);
        assert.ok(r.metrics!['sparse/pruned_mass'] >= 0 && r.metrics!['sparse/pruned_mass'] <= 1);
      }
      if (keys.method === 'sste') assert.ok(output.metrics['sparse/beta/blocks.0.mlp.fc.weight'] > 1, 'β > 1 makes up for the soft threshold');
      if (keys.method === 'ast') assert.ok(measured.every((r) => r.metrics!['sparse/lambda'] === Math.min(1, (r.step - 1) / 4) * 1e-4));
      if (keys.method === 'cast') assert.ok(measured.every((r) => r.metrics!['sparse/alpha'] === (r.step - 1) / 12));
      if (keys.method === 'ast' || keys.method === 'cast') assert.ok(history.every((r) => r.metrics?.['train/kl'] !== undefined && r.metrics['train/kl'] >= 0), 'the distillation loss is recorded every step');
    });
  }

  it('sste from scratch: β from the initial weights, 2:4 output', async () => {
    const { output } = await activityEnv(fakeWorkflow().client).run(activities['sparse-train'], task('scratch', {}));
    assert.equal(await violations(output, 'ffn', false), 0);
  });

  for (const id of ['ast', 'cast', 'sste', 'srste-dense-tail']) {
    it(`${id}: cancelled mid-way and resumed, it gives the bits of an uninterrupted run`, async () => {
      const whole = await activityEnv(fakeWorkflow().client).run(activities['sparse-train'], task(id, { dense }));
      const workflow = fakeWorkflow();
      const first = activityEnv(workflow.client);
      first.env.on('heartbeat', (h: { step: number }) => {
        if (h.step === 6) first.env.cancel();
      });
      await assert.rejects(first.run(activities['sparse-train'], task(id, { dense })));
      const last = workflow.signalled.at(-1)!;
      assert.ok(last.step >= 6, `a checkpoint where the stage stood (${last.step})`);
      const resumed = await activityEnv(fakeWorkflow().client, {
        attempt: 2,
        heartbeatDetails: { step: last.step, steps: 12, loss: 1, tokensPerSec: null, etaSec: null, checkpoint: last },
      }).run(activities['sparse-train'], task(id, { dense }));
      assert.equal(resumed.output.events.find((e) => e.type === 'resumed')?.payload.step, last.step);
      assert.equal(artifact(resumed.output, 'model').sha256, artifact(whole.output, 'model').sha256, 'the same model, bit for bit');
      assert.equal(artifact(resumed.output, 'history').sha256, artifact(whole.output, 'history').sha256, 'the same history, metrics included');
    });
  }
});
