// The evaluate activity on its own (MockActivityEnvironment, the real engine, real ONNX Runtime and
// the real artifact store): perplexity of an input model on the chosen sets with the protocol in its
// report, its measures and greedy sample; ONNX Runtime on the exported model agreeing with the
// engine (runtime both) on a dense and on a 2:4 model; the same report bytes at 1 and 2 threads; a
// cancel that ends it as cancelled; and an
// input without a model refused without a retry.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';

import type { StageOutput, StageTask } from '../../../schemas/pipeline';
import { Recipe } from '../../../schemas/recipe';
import { ERROR_TYPES } from '../../../workflows/contract';
import { compareRuntimes } from '../../../activities/stages/evaluate';
import { EvalReport, type RuntimeReport } from '../../../schemas/eval-report';
import { createComputeActivities } from '../../../activities';
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
    { id: 'pruned', kind: 'prune', from: 'dense', scope: 'all' },
    { id: 'both', kind: 'evaluate', from: ['dense', 'pruned'], batch: 4, runtime: 'both', sample: { prompt: 'Call me', tokens: 12 } },
  ],
});
const stageTask = (stageId: string, inputs: Record<string, StageOutput> = {}): StageTask => ({ runId: 'r', recipe, stageId, inputs, cacheKey: 'k', resumeFrom: null });

let dense: StageOutput;
before(async () => {
  dense = (await activityEnv(fakeWorkflow().client).run(activities.pretrain, stageTask('dense'))).output;
});

const reportOf = (output: StageOutput) => {
  const { sha256 } = artifact(output, 'report');
  return EvalReport.parse(JSON.parse(readFileSync(`${home}/artifacts/${sha256.slice(0, 2)}/${sha256}`, 'utf8')));
};

describe('the evaluate activity', () => {
  it('reports the perplexity of its input model on the sets it names, with the protocol', async () => {
    const { env, heartbeats, run } = activityEnv(fakeWorkflow().client);
    const { output } = await run(activities.evaluate, stageTask('report', { dense }));
    assert.deepEqual(Object.keys(output.metrics).sort(), [
      'dense/bits_per_weight',
      'dense/bytes',
      'dense/bytes_dense',
      'dense/native/latency_ms',
      'dense/native/threads',
      'dense/native/tokens_per_sec',
      'dense/nonzero_params',
      'dense/params',
      'dense/tail/nll',
      'dense/tail/ppl',
      'dense/two_four',
      'dense/two_four/attn',
      'dense/two_four/ffn',
    ]);
    // layers 1, dim 16, vocab 256, context 16: embeddings, positions, one block, the final norm.
    const params = 256 * 16 + 16 * 16 + (2 * 16 + 3 * 16 * 16 + 3 * 16 + 16 * 16 + 16 + 2 * 16) + (2 * 64 * 16 + 64 + 16) + 2 * 16;
    assert.equal(output.metrics['dense/params'], params);
    assert.equal(output.metrics['dense/bits_per_weight'], 32, 'a dense model is 32 bits a weight');
    assert.ok(output.metrics['dense/two_four'] < 0.01, 'trained dense weights are almost never 2:4 by chance');
    const ppl = output.metrics['dense/tail/ppl'];
    assert.ok(ppl > 1 && ppl < 256, `a 4-step byte model has a perplexity between 1 and the vocabulary size, got ${ppl}`);
    assert.ok(Math.abs(Math.log(ppl) - output.metrics['dense/tail/nll']) < 1e-9);
    const report = reportOf(output);
    const [native] = report.models.dense.runtimes;
    assert.equal(native.sets[0].set, 'tail');
    assert.equal(native.sets[0].protocol.name, 'non-overlapping-windows');
    assert.equal(report.models.dense.sample.prompt, 'The ');
    assert.equal(report.models.dense.sample.tokens.length, 48);
    assert.equal(heartbeats.at(-1)?.step, heartbeats.at(-1)?.steps, 'progress ends at the total number of windows');
  });

  it('runtime both: ONNX Runtime on the exported model agrees with the engine, dense and 2:4', async () => {
    const pruned = (await activityEnv(fakeWorkflow().client).run(activities.prune, stageTask('pruned', { dense }))).output;
    const { output } = await activityEnv(fakeWorkflow().client).run(activities.evaluate, stageTask('both', { dense, pruned }));
    const report = reportOf(output);
    for (const from of ['dense', 'pruned']) {
      const model = report.models[from];
      assert.deepEqual(model.runtimes.map((r) => r.runtime), ['native', 'onnxruntime']);
      for (const a of model.agreement!) assert.ok(Math.abs(a.relative) < 1e-5, `${from} on ${a.set}: ${a.native} vs ${a.onnxruntime}`);
      assert.equal(output.metrics[`${from}/tail/ppl/onnxruntime`], model.runtimes[1].sets[0].perplexity);
      assert.ok(output.metrics[`${from}/onnxruntime/tokens_per_sec`] > 0);
      assert.equal(model.sample.prompt, 'Call me');
      assert.equal(model.sample.tokens.length, 12);
    }
    assert.equal(output.metrics['pruned/two_four'], 1, 'a pruned model measures exactly 2:4 in scope');
    assert.deepEqual([output.metrics['pruned/two_four/ffn'], output.metrics['pruned/two_four/attn']], [1, 1]);
    // Every block linear weight (qkv 768, out 256, fc 1024, proj 1024 = 3072) at 17 bits instead of 32.
    const params = output.metrics['pruned/params'];
    assert.equal(output.metrics['pruned/bits_per_weight'], (32 * params - 15 * 3072) / params);
    assert.ok(output.metrics['pruned/nonzero_params'] <= params - 3072 / 2);
  });

  it('the report depends only on what it computes: 1 and 2 threads give the same artifact', async () => {
    const two = createComputeActivities({ home, threads: 2 });
    const [a, b] = [
      (await activityEnv(fakeWorkflow().client).run(activities.evaluate, stageTask('both', { dense, pruned: dense }))).output,
      (await activityEnv(fakeWorkflow().client).run(two.evaluate, stageTask('both', { dense, pruned: dense }))).output,
    ];
    assert.equal(artifact(a, 'report').sha256, artifact(b, 'report').sha256);
    assert.deepEqual([a.metrics['dense/native/threads'], b.metrics['dense/native/threads']], [1, 2], 'the thread count is a metric, in the database');
  });

  it('runtimes more than 0.5% apart fail the stage, without a retry, naming both perplexities', () => {
    const runtime = (name: 'native' | 'onnxruntime', perplexity: number) => ({ runtime: name, sets: [{ set: 'tail', perplexity }] }) as unknown as RuntimeReport;
    assert.equal(compareRuntimes('m', runtime('native', 10), runtime('onnxruntime', 10.049))[0].relative.toFixed(4), '0.0049');
    const err = (() => {
      try {
        compareRuntimes('m', runtime('native', 10), runtime('onnxruntime', 10.06));
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err instanceof ApplicationFailure && err.nonRetryable);
    assert.match(err.message, /model m: on tail the native engine's perplexity is 10\.0000 but ONNX Runtime's is 10\.0600 \(0\.60%, more than 0\.5% apart\)/);
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
