// The evaluate activity on its own (MockActivityEnvironment, the real engine and artifact store):
// perplexity of an input model on the chosen sets with the protocol in its report, a cancel that
// ends it as cancelled, and an input without a model refused without a retry.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';

import type { StageOutput, StageTask } from '../../../schemas/pipeline';
import { Recipe } from '../../../schemas/recipe';
import { ERROR_TYPES } from '../../../workflows/contract';
import { activityEnv, artifact, computeFixture, fakeWorkflow } from './helpers';

const { home, activities } = computeFixture('evaluate-activity');

const recipe = Recipe.parse({
  name: 'evaluate-activity',
  model: { layers: 1, dim: 16, heads: 2, context: 16, tokenizer: 'bytes' },
  data: {
    corpus: 'moby-dick',
    train: { items: [3, 6] },
    eval: { tail: { corpus: 'moby-dick', items: [130, 131] }, head: { corpus: 'moby-dick', items: [0, 1] } },
  },
  stages: [
    { id: 'dense', kind: 'pretrain', steps: 4, batch: 4, lr: 0.01 },
    { id: 'report', kind: 'evaluate', from: 'dense', sets: ['tail'], batch: 4 },
  ],
});
const stageTask = (stageId: string, inputs: Record<string, StageOutput> = {}): StageTask => ({ runId: 'r', recipe, stageId, inputs, cacheKey: 'k', resumeFrom: null });

let dense: StageOutput;
before(async () => {
  dense = (await activityEnv(fakeWorkflow().client).run(activities.pretrain, stageTask('dense'))).output;
});

describe('the evaluate activity', () => {
  it('reports the perplexity of its input model on the sets it names, with the protocol', async () => {
    const { env, heartbeats, run } = activityEnv(fakeWorkflow().client);
    const { output } = await run(activities.evaluate, stageTask('report', { dense }));
    assert.deepEqual(Object.keys(output.metrics).sort(), ['dense/tail/nll', 'dense/tail/ppl']);
    const ppl = output.metrics['dense/tail/ppl'];
    assert.ok(ppl > 1 && ppl < 256, `a 4-step byte model has a perplexity between 1 and the vocabulary size, got ${ppl}`);
    assert.ok(Math.abs(Math.log(ppl) - output.metrics['dense/tail/nll']) < 1e-9);
    const report = JSON.parse(readFileSync(`${home}/artifacts/${artifact(output, 'report').sha256.slice(0, 2)}/${artifact(output, 'report').sha256}`, 'utf8'));
    const [result] = report.models.dense;
    assert.equal(result.set, 'tail');
    assert.equal(result.result.protocol.name, 'non-overlapping-windows');
    assert.equal(heartbeats.at(-1)?.step, heartbeats.at(-1)?.steps, 'progress ends at the total number of windows');
  });

  it('a cancel ends it as cancelled', async () => {
    const { env, run } = activityEnv(fakeWorkflow().client);
    env.once('heartbeat', () => env.cancel());
    await assert.rejects(run(activities.evaluate, stageTask('report', { dense })), CancelledFailure);
  });

  it('an input stage that produced no model is refused without a retry', async () => {
    const noModel: StageOutput = { ...dense, artifacts: dense.artifacts.filter((a) => a.role !== 'model') };
    const err = await activityEnv(fakeWorkflow().client).run(activities.evaluate, stageTask('report', { dense: noModel })).catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.nonRetryable, true);
    assert.equal(err.type, ERROR_TYPES.badInput);
    assert.match(err.message, /input stage dense produced no model/);
  });
});
