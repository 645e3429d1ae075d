// The pretrain activity on its own (MockActivityEnvironment, the real engine and artifact store):
// a retry resumes from the checkpoint its last heartbeat names and ends with the bits of an
// uninterrupted stage; a damaged newest checkpoint is passed over for the newest intact one;
// checkpoints hold state and a constant-size history segment; a cancel stops it at a step
// boundary after it stored and reported a checkpoint there, and resuming from that checkpoint off
// the grid rejoins the uninterrupted bits; a non-finite loss or gradient fails the stage as
// diverged, or (skip-step) discards that step, bit-exactly across a resume; input that fails on
// every attempt is refused without a retry.
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';

import { readCheckpointInfo } from '../../../kernels/checkpoint';
import type { CheckpointRef, StageTask } from '../../../schemas/pipeline';
import { Recipe } from '../../../schemas/recipe';
import { MAX_SKIPPED_IN_A_ROW } from '../../../schemas/stages/training';
import { ERROR_TYPES } from '../../../workflows/contract';
import { poisonGradients } from '../../faults/poison';
import { activityEnv, artifact, computeFixture, fakeWorkflow } from './helpers';

const { home, activities } = computeFixture('pretrain-activity');
const stored = (sha256: string) => `${home}/artifacts/${sha256.slice(0, 2)}/${sha256}`;
const bytesOf = (ref: { sha256: string }) => readFileSync(stored(ref.sha256));

/** A retry (attempt 2) whose last heartbeat named `checkpoint`. */
const retryFrom = (checkpoint: CheckpointRef, known: CheckpointRef | null = null) =>
  activityEnv(fakeWorkflow(known).client, { attempt: 2, heartbeatDetails: { step: checkpoint.step + 1, steps: 0, loss: 3, tokensPerSec: null, etaSec: null, checkpoint } });

function task(stage: Record<string, unknown>, data?: Record<string, unknown>): StageTask {
  const { seed = 3, ...rest } = stage;
  const recipe = Recipe.parse({
    name: 'pretrain-activity',
    seed,
    model: { layers: 1, dim: 16, heads: 2, context: 16, tokenizer: 'bytes' },
    data: data ?? { corpus: 'moby-dick', train: { items: [3, 6] }, eval: { tail: { corpus: 'moby-dick', items: [130, 131] } } },
    stages: [{ id: 'dense', kind: 'pretrain', batch: 4, lr: 0.01, ...rest }],
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

    const gone = { stageId: 'dense', step: 4, sha256: 'e'.repeat(64), bytes: 10, history: null, earlier: [] };
    const missingCheckpoint = { ...task({ steps: 8 }), resumeFrom: gone };
    const err2 = await activityEnv(fakeWorkflow().client).run(activities.pretrain, missingCheckpoint).catch((e: unknown) => e);
    assert.ok(err2 instanceof ApplicationFailure && err2.nonRetryable, `a missing checkpoint is ${String(err2)}`);
    assert.equal(err2.type, ERROR_TYPES.badInput);
    assert.match(err2.message, /^stage dense cannot resume: none of its 1 known checkpoints is intact \(step 4 \(eeeeeeeeeeee\) is missing: expected it at .*\); run the recipe again/);
  });

  it('a damaged newest checkpoint: the retry continues from the newest intact one, says so, and ends with the uninterrupted bits', async () => {
    const t = task({ steps: 12, checkpointEvery: 4, seed: 0 });
    const first = fakeWorkflow();
    const whole = await activityEnv(first.client).run(activities.pretrain, t);
    const [older, newer] = first.signalled;
    assert.deepEqual(newer.earlier, [{ step: older.step, sha256: older.sha256, bytes: older.bytes }], 'each reference carries the older checkpoints');
    const file = stored(newer.sha256);
    chmodSync(file, 0o644);
    const damaged = readFileSync(file);
    damaged[damaged.length - 1] ^= 0xff;
    writeFileSync(file, damaged);

    const resumed = await retryFrom(newer, newer).run(activities.pretrain, t);
    assert.deepEqual(resumed.output.events.find((e) => e.type === 'resumed')?.payload.step, 4);
    const fallback = resumed.output.events.find((e) => e.type === 'resume-fallback')?.payload;
    assert.equal(fallback?.step, 4);
    assert.match(String(fallback?.message), new RegExp(`^continued from the checkpoint at step 4, the newest intact one: step 8 \\(${newer.sha256.slice(0, 12)}\\) is corrupt: `));
    assert.equal(artifact(resumed.output, 'model').sha256, artifact(whole.output, 'model').sha256);
    assert.equal(artifact(resumed.output, 'history').sha256, artifact(whole.output, 'history').sha256);
    assert.equal(readFileSync(file).equals(damaged), false, 'writing step 8 again (the same bits) repaired the damaged file');
  });

  it('checkpoints hold state, not history: each has the same size and adds one history segment, chained back to step 1', async () => {
    const first = fakeWorkflow();
    const whole = await activityEnv(first.client).run(activities.pretrain, task({ steps: 16, checkpointEvery: 3, evalEvery: 5, lr: 0.03 }));
    const refs = first.signalled;
    assert.deepEqual(refs.map((r) => r.step), [3, 6, 9, 12, 15]);
    // The same size up to the digits of the step numbers in the header, which safetensors pads to 8 bytes.
    const sizes = refs.map((r) => r.bytes);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 8, `checkpoint sizes ${sizes.join(', ')}`);
    let previous: string | null = null;
    const chained: unknown[] = [];
    for (const ref of refs) {
      const info = await readCheckpointInfo(stored(ref.sha256));
      assert.equal(info.extra.historySegment, ref.history!.sha256, 'the checkpoint names its segment');
      assert.equal(info.extra.history, undefined, 'and holds no history itself');
      const segment = JSON.parse(bytesOf(ref.history!).toString('utf8'));
      assert.equal(segment.previous, previous);
      assert.deepEqual(segment.steps.map((r: { step: number }) => r.step), [ref.step - 2, ref.step - 1, ref.step]);
      chained.push(...segment.steps);
      previous = ref.history!.sha256;
    }
    const history = JSON.parse(bytesOf(artifact(whole.output, 'history')).toString('utf8'));
    assert.deepEqual(history.slice(0, 15), chained, 'the segments hold the final history, evaluations included');
    assert.ok(history[4].eval && history[9].eval, 'steps 5 and 10 evaluated');
  });

  it('resuming from a checkpoint written at a cancel, off the checkpointEvery grid, rejoins the uninterrupted bits', async () => {
    const t = task({ steps: 24, checkpointEvery: 8, lr: 0.02, evalEvery: 5 });
    const uninterrupted = fakeWorkflow();
    const whole = await activityEnv(uninterrupted.client).run(activities.pretrain, t);
    const cancelled = fakeWorkflow();
    const { env, run } = activityEnv(cancelled.client);
    env.on('heartbeat', (h: { step: number }) => {
      if (h.step === 11) env.cancel();
    });
    await assert.rejects(run(activities.pretrain, t), CancelledFailure);
    const offGrid = cancelled.signalled.at(-1)!;
    assert.ok(offGrid.step > 8 && offGrid.step < 16, `cancelled between grid checkpoints (step ${offGrid.step})`);

    const rejoined = fakeWorkflow();
    const resumed = await activityEnv(rejoined.client, { attempt: 2, heartbeatDetails: { step: offGrid.step, steps: 24, loss: 3, tokensPerSec: null, etaSec: null, checkpoint: offGrid } }).run(activities.pretrain, t);
    assert.deepEqual(resumed.output.events.find((e) => e.type === 'resumed')?.payload.step, offGrid.step);
    const at16 = (signalled: CheckpointRef[]) => signalled.find((r) => r.step === 16)!;
    assert.equal(at16(rejoined.signalled).sha256, at16(uninterrupted.signalled).sha256, 'the grid checkpoint at 16 has the uninterrupted bits, history segment included');
    assert.equal(artifact(resumed.output, 'model').sha256, artifact(whole.output, 'model').sha256);
    assert.equal(artifact(resumed.output, 'history').sha256, artifact(whole.output, 'history').sha256);
  });
});

describe('the pretrain activity, when the loss or gradient norm is not finite', () => {
  it('fails at once as diverged, naming the step and the quantity (onNonFinite: fail)', async () => {
    const err = await activityEnv(fakeWorkflow().client)
      .run(activities.pretrain, task({ steps: 20, lr: 1e9, weightDecay: 0, warmup: 0 }))
      .catch((e: unknown) => e);
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.type, ERROR_TYPES.diverged);
    assert.equal(err.nonRetryable, true, 'never retried: the same bits diverge again');
    assert.match(err.message, /^diverged at step \d+: the (loss|gradient norm) is (NaN|-?Infinity); lower `lr`, or set `onNonFinite: skip-step`/);
  });

  it('skip-step discards a non-finite step (weights, moments, optimizer step untouched), records it, and resumes across it bit-exactly', async () => {
    // The 6th step's gradient is NaN: the optimizer has applied 5 updates when it is computed.
    const restore = poisonGradients(new Set([5]));
    try {
      await skipAndResume();
    } finally {
      restore();
    }
  });

  async function skipAndResume() {
    const t = task({ steps: 12, checkpointEvery: 4, onNonFinite: 'skip-step' });
    const first = fakeWorkflow();
    const whole = await activityEnv(first.client).run(activities.pretrain, t);
    const history = JSON.parse(bytesOf(artifact(whole.output, 'history')).toString('utf8'));
    assert.deepEqual(history.filter((r: { skipped?: true }) => r.skipped).map((r: { step: number; gradNorm: null }) => [r.step, r.gradNorm]), [[6, null]]);
    assert.equal(whole.output.metrics['train/skipped_steps'], 1);
    const skipped = whole.output.events.filter((e) => e.type === 'step-skipped').map((e) => e.payload);
    assert.deepEqual(skipped, [{ step: 6, quantity: 'gradient norm', value: 'NaN', inARow: 1, attempt: 1 }]);
    const [at4, at8] = first.signalled;
    const info = await readCheckpointInfo(stored(at8.sha256));
    assert.equal(info.step, 7, 'the optimizer counted 7 updates in 8 steps');

    for (const from of [at4, at8]) {
      const resumed = await retryFrom(from).run(activities.pretrain, t);
      assert.equal(artifact(resumed.output, 'model').sha256, artifact(whole.output, 'model').sha256, `resumed from step ${from.step}`);
      assert.equal(artifact(resumed.output, 'history').sha256, artifact(whole.output, 'history').sha256, `resumed from step ${from.step}`);
    }
  }

  it(`skip-step fails the stage when more than ${MAX_SKIPPED_IN_A_ROW} steps in a row are not finite`, async () => {
    const restore = poisonGradients('always');
    try {
      const err = await activityEnv(fakeWorkflow().client)
        .run(activities.pretrain, task({ steps: 40, onNonFinite: 'skip-step' }))
        .catch((e: unknown) => e);
      assert.ok(err instanceof ApplicationFailure && err.type === ERROR_TYPES.diverged && err.nonRetryable, String(err));
      assert.equal(
        err.message,
        `diverged at step ${MAX_SKIPPED_IN_A_ROW + 1}: the gradient norm is NaN, after ${MAX_SKIPPED_IN_A_ROW} steps in a row already skipped (onNonFinite: skip-step skips at most ${MAX_SKIPPED_IN_A_ROW} in a row); lower \`lr\``,
      );
    } finally {
      restore();
    }
  });
});
