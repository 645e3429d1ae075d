// Which stage failures are retried: the engine refusing its input, memory or disk running out and
// unwritable storage fail at once (non-retryable, with the resource, path and numbers); anything
// else stays retryable; every failure carries the attempt it happened on. A stage that cannot fit
// the worker's memory is refused before anything is allocated.
import assert from 'node:assert/strict';
import os from 'node:os';
import { describe, it } from 'node:test';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';

import { attachAttempt, classifyStageFailure } from '../../activities/failures';
import { InvalidArgumentError, OutOfMemoryError } from '../../kernels';
import type { StageTask } from '../../schemas/pipeline';
import { Recipe } from '../../schemas/recipe';
import { ERROR_TYPES } from '../../workflows/contract';
import { activityEnv, computeFixture, fakeWorkflow } from './stages/helpers';

const where = { home: os.tmpdir() };
const systemError = (code: string, path: string) => Object.assign(new Error(`${code}: write ${path}`), { code, path });

function failure(error: unknown): ApplicationFailure {
  assert.ok(error instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(error)}`);
  return error;
}

describe('classifyStageFailure', () => {
  it('a full disk, found through the cause chain, is resource exhaustion with the path and the free space', () => {
    const wrapped = new Error('cannot write /x/ckpt.safetensors: ENOSPC', { cause: systemError('ENOSPC', `${os.tmpdir()}/ckpt.tmp`) });
    const f = failure(classifyStageFailure(wrapped, where));
    assert.equal(f.type, ERROR_TYPES.resourceExhausted);
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /the disk is full writing .*ckpt\.tmp \(ENOSPC\): [\d.]+ [KMGT]?i?B(ytes)? free of [\d.]+ [KMGT]iB on its file system/);
  });

  it('the engine out of memory, or an allocation the worker cannot make, is resource exhaustion with the machine memory', () => {
    for (const error of [new OutOfMemoryError('out of memory allocating 123 floats'), new RangeError('Array buffer allocation failed')]) {
      const f = failure(classifyStageFailure(error, where));
      assert.equal(f.type, ERROR_TYPES.resourceExhausted);
      assert.equal(f.nonRetryable, true);
      assert.match(f.message, /this machine has [\d.]+ GiB of memory, [\d.]+ [MG]iB free/);
    }
  });

  it('input the engine refuses is bad input; a read-only file system is unwritable storage; both not retried', () => {
    const bad = failure(classifyStageFailure(new InvalidArgumentError('dim must be at most 16777216'), where));
    assert.deepEqual([bad.type, bad.nonRetryable], [ERROR_TYPES.badInput, true]);
    const ro = failure(classifyStageFailure(systemError('EROFS', '/mnt/ro/artifacts/tmp/x'), where));
    assert.deepEqual([ro.type, ro.nonRetryable], [ERROR_TYPES.storageUnwritable, true]);
    assert.match(ro.message, /cannot write \/mnt\/ro\/artifacts\/tmp\/x \(EROFS: a read-only file system\)/);
  });

  it('anything else stays as it is (retryable)', () => {
    const transient = new Error('connection reset');
    assert.equal(classifyStageFailure(transient, where), transient);
    const cancelled = new CancelledFailure('CANCELLED');
    assert.equal(classifyStageFailure(cancelled, where), cancelled);
  });
});

describe('attachAttempt', () => {
  it('keeps the type, message and retryability, and adds the attempt', () => {
    const f = failure(attachAttempt(ApplicationFailure.create({ type: 'BadInput', message: 'no', nonRetryable: true }), 3));
    assert.deepEqual([f.type, f.message, f.nonRetryable, f.details], ['BadInput', 'no', true, [{ attempt: 3 }]]);
    const plain = failure(attachAttempt(new TypeError('oops'), 2));
    assert.deepEqual([plain.type, plain.message, plain.nonRetryable, plain.details], ['TypeError', 'oops', false, [{ attempt: 2 }]]);
    const cancelled = new CancelledFailure('CANCELLED');
    assert.equal(attachAttempt(cancelled, 2), cancelled);
  });
});

describe('a stage the worker cannot fit', () => {
  const { activities } = computeFixture('too-big');
  it('is refused before anything is allocated, without a retry, with the estimate', async () => {
    const recipe = Recipe.parse({
      name: 'too-big',
      model: { layers: 2, dim: 64, heads: 4, context: 1024, tokenizer: 'bytes' },
      data: { corpus: 'moby-dick', train: { items: [3, 6] }, eval: { tail: { corpus: 'moby-dick', items: [130, 131] } } },
      stages: [{ id: 'dense', kind: 'pretrain', steps: 4, batch: 100_000, lr: 0.01 }],
    });
    const task: StageTask = { runId: 'r', recipe, stageId: 'dense', inputs: {}, cacheKey: 'k', resumeFrom: null };
    const err = await activityEnv(fakeWorkflow().client).run(activities.pretrain, task).catch((e: unknown) => e);
    const f = failure(err);
    assert.equal(f.type, ERROR_TYPES.resourceExhausted);
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /stage dense needs about [\d.]+ TiB of memory \(weights .*\), but this machine has [\d.]+ GiB; run it on a larger machine or shrink it/);
    assert.deepEqual(f.details, [{ attempt: 1 }]);
  });
});
