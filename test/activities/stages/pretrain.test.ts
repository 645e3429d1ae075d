// The pretrain activity on its own (MockActivityEnvironment, the real engine and artifact store):
// a retry resumes from the checkpoint its last heartbeat names and ends with the bits of an
// uninterrupted stage; a cancel stops it at a step boundary after it stored and reported a
// checkpoint there; input that fails on every attempt is refused without a retry.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';

import { readCheckpointInfo } from '../../../kernels/checkpoint';
import type { StageTask } from '../../../schemas/pipeline';
import { Recipe } from '../../../schemas/recipe';
import { ERROR_TYPES, NON_RETRYABLE } from '../../../workflows/contract';
import { activityEnv, artifact, computeFixture, fakeWorkflow } from './helpers';

const { home, activities } = computeFixture('pretrain-activity');

function task(stage: Record<string, unknown>, data?: Record<string, unknown>): StageTask {
  const recipe = Recipe.parse({
    name: 'pretrain-activity',
    seed: 3,
    model: { layers: 1, dim: 16, heads: 2, context: 16, tokenizer: 'bytes' },
    data: data ?? { corpus: 'moby-dick', train: { items: [3, 6] }, eval: { tail: { corpus: 'moby-dick', items: [130, 131] } } },
    stages: [{ id: 'dense', kind: 'pretrain', batch: 4, lr: 0.01, ...stage }],
  });
  return { runId: 'r', recipe, stageId: 'dense', inputs: {}, cacheKey: 'k', resumeFrom: null };
}

describe('the pretrain activity', () => {
  it('resumes from the checkpoint in its last heartbeat and ends with the bits of an uninterrupted run', async () => {
    const t = task({ steps: 12, checkpointEvery: 4 });
    const first = fakeWorkflow();
    const whole = await activityEnv(first.client).run(activities.pretrain, t);
    assert.deepEqual(first.signalled.map((c) => c.step), [4, 8], 'every checkpoint is signalled to the workflow');

    const retry = fakeWorkflow();
    const { env, heartbeats, run } = activityEnv(retry.client, {
      attempt: 2,
      heartbeatDetails: { step: 5, steps: 12, loss: 3, tokensPerSec: null, etaSec: null, checkpoint: first.signalled[0] },
    });
    const resumed = await run(activities.pretrain, t);
    assert.equal(resumed.attempt, 2);
    const event = resumed.output.events.find((e) => e.type === 'resumed');
    assert.deepEqual(event?.payload.step, 4);
    assert.equal(heartbeats[0].step, 5, 'the first step after the checkpoint is the first one trained');
    assert.equal(artifact(resumed.output, 'model').sha256, artifact(whole.output, 'model').sha256);
    assert.equal(artifact(resumed.output, 'history').sha256, artifact(whole.output, 'history').sha256);
  });

  it('a retry takes a newer checkpoint the workflow was told of over its older heartbeat', async () => {
    const t = task({ steps: 12, checkpointEvery: 4, lr: 0.02 });
    const first = fakeWorkflow();
    const whole = await activityEnv(first.client).run(activities.pretrain, t);
    const [older, newer] = first.signalled;
    const { env, run } = activityEnv(fakeWorkflow(newer).client, {
      attempt: 2,
      heartbeatDetails: { step: 5, steps: 12, loss: 3, tokensPerSec: null, etaSec: null, checkpoint: older },
    });
    const resumed = await run(activities.pretrain, t);
    assert.deepEqual(resumed.output.events.find((e) => e.type === 'resumed')?.payload.step, newer.step);
    assert.equal(artifact(resumed.output, 'model').sha256, artifact(whole.output, 'model').sha256);
  });

  it('a cancel stops at a step boundary, after storing and reporting a checkpoint there', async () => {
    const t = task({ steps: 100_000, checkpointEvery: 50_000 });
    const workflow = fakeWorkflow();
    const { env, heartbeats, run } = activityEnv(workflow.client);
    const cancelAt = 3 + Math.floor(Math.random() * 20);
    env.on('heartbeat', (h: { step: number }) => {
      if (h.step === cancelAt) env.cancel();
    });
    await assert.rejects(run(activities.pretrain, t), CancelledFailure);
    const last = workflow.signalled.at(-1);
    assert.ok(last && last.step >= cancelAt, `a checkpoint at or after step ${cancelAt} was signalled (got ${last?.step})`);
    assert.deepEqual(heartbeats.at(-1)?.checkpoint, last, 'the last heartbeat names it, for a retry');
    const stored = await readCheckpointInfo(`${home}/artifacts/${last.sha256.slice(0, 2)}/${last.sha256}`);
    assert.deepEqual(stored.data, { stageStep: last.step });
  });

  it('input that fails on every attempt is not retried', async () => {
    const missingFile = task({ steps: 4 }, { corpus: 'files', train: { paths: ['/nonexistent/corpus.txt'] }, eval: { x: { corpus: 'moby-dick' } } });
    const err = await activityEnv(fakeWorkflow().client).run(activities.pretrain, missingFile).catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.nonRetryable, true);
    assert.equal(err.type, ERROR_TYPES.badInput);
    assert.match(err.message, /\/nonexistent\/corpus\.txt/);

    const gone = { stageId: 'dense', step: 4, sha256: 'e'.repeat(64), bytes: 10 };
    const missingCheckpoint = { ...task({ steps: 8 }), resumeFrom: gone };
    const err2 = await activityEnv(fakeWorkflow().client).run(activities.pretrain, missingCheckpoint).catch((e: unknown) => e);
    assert.ok(err2 instanceof Error && NON_RETRYABLE.includes(err2.name), `a missing checkpoint is ${String(err2)}`);
  });
});
