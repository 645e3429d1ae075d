// The stage cache: hits by key with every output verified, damaged candidates passed over, keys
// that cover config, inputs, data and code (not stage ids), and misses explained in words.
import assert from 'node:assert/strict';
import { chmodSync, unlinkSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { explainCacheMiss, findCachedStage, stageCacheKey } from '../../../activities/store/cache';
import { linkArtifacts, upsertStage } from '../../../activities/store/writes';
import type { Recipe } from '../../../schemas/recipe';
import { cacheInput, dense, quickstart, report, storeFixture } from './fixtures';

const { fixture, newRun, completedDense } = storeFixture('cache');

describe('the stage cache', () => {
  it('finds a completed stage by cache key, with verified artifacts and final metrics', async () => {
    newRun('r1');
    const basis = cacheInput(quickstart, dense);
    const key = stageCacheKey(basis);
    const model = await completedDense('r1', 'model for cache', key, basis);
    const hit = await findCachedStage(fixture.handle.db, fixture.store, key);
    assert.ok(hit);
    assert.equal(hit.runId, 'r1');
    assert.deepEqual(hit.metrics, { loss: 1.5 });
    assert.deepEqual(hit.artifacts.map((a) => [a.sha256, a.role, a.path]), [[model.sha256, 'model', model.path]]);
    assert.equal(await findCachedStage(fixture.handle.db, fixture.store, 'f'.repeat(64)), null);
  });

  it('does not need the mid-stage checkpoints of a finished stage', async () => {
    newRun('r1');
    const basis = cacheInput(quickstart, dense);
    const key = stageCacheKey(basis);
    const model = await completedDense('r1', 'model with checkpoints', key, basis);
    const checkpoint = await fixture.store.put(Buffer.from('checkpoint at 50'));
    linkArtifacts(fixture.handle.db, [{ runId: 'r1', stageId: 'dense', role: 'checkpoint', step: 50, artifact: { ...checkpoint, kind: 'checkpoint' } }]);
    chmodSync(checkpoint.path, 0o644);
    unlinkSync(checkpoint.path); // pruned to save disk
    const hit = await findCachedStage(fixture.handle.db, fixture.store, key);
    assert.deepEqual(hit?.artifacts.map((a) => a.sha256), [model.sha256]);
  });

  it('passes over a candidate whose artifact is missing or corrupt', async () => {
    const basis = cacheInput(quickstart, dense);
    const key = stageCacheKey(basis);
    newRun('old');
    await completedDense('old', 'old model', key, basis);
    newRun('new');
    const newer = await completedDense('new', 'new model', key, basis);
    chmodSync(newer.path, 0o644);
    writeFileSync(newer.path, 'bit rot');
    assert.equal((await findCachedStage(fixture.handle.db, fixture.store, key))?.runId, 'old', 'the corrupt newer one is skipped');
    const old = (await findCachedStage(fixture.handle.db, fixture.store, key))!.artifacts[0];
    unlinkSync(old.path);
    assert.equal(await findCachedStage(fixture.handle.db, fixture.store, key), null);
  });

  it('a stage served from the cache is not itself a candidate', async () => {
    const basis = cacheInput(quickstart, dense);
    const key = stageCacheKey(basis);
    newRun('origin');
    await completedDense('origin', 'origin model', key, basis);
    newRun('copy');
    upsertStage(fixture.handle.db, {
      runId: 'copy',
      stage: dense,
      status: 'completed',
      cacheKey: key,
      reusedFrom: { runId: 'origin', stageId: 'dense' },
      reason: 'cache hit',
    });
    assert.equal((await findCachedStage(fixture.handle.db, fixture.store, key))?.runId, 'origin');
  });

  it('the cache key covers config, inputs, data and code, and ignores stage ids', () => {
    const basis = cacheInput(quickstart, dense);
    const key = stageCacheKey(basis);
    assert.match(key, /^[0-9a-f]{64}$/);
    const renamed = { ...quickstart, stages: [{ ...dense, id: 'renamed' }, report] } as Recipe;
    assert.equal(stageCacheKey(cacheInput(renamed, renamed.stages[0])), key);
    const otherLr = { ...quickstart, stages: [{ ...dense, lr: 0.001 }, report] } as Recipe;
    for (const changed of [
      cacheInput(otherLr, otherLr.stages[0]),
      { ...basis, inputs: ['a'.repeat(64)] },
      { ...basis, dataHash: 'e'.repeat(64) },
      { ...basis, codeVersion: 'git:other' },
    ]) {
      assert.notEqual(stageCacheKey(changed), key);
    }
  });

  it('explains a miss by what changed since the last run of the same stage', async () => {
    assert.equal(
      explainCacheMiss(fixture.handle.db, 'quickstart', 'dense', cacheInput(quickstart, dense)),
      'no finished "dense" stage of an earlier "quickstart" run to reuse',
    );
    const basis = cacheInput(quickstart, dense);
    newRun('r1');
    await completedDense('r1', 'explain', stageCacheKey(basis), basis);
    const otherLr = { ...quickstart, stages: [{ ...dense, lr: 0.001 }, report] } as Recipe;
    const changed = { ...cacheInput(otherLr, otherLr.stages[0]), codeVersion: 'git:next' };
    assert.equal(
      explainCacheMiss(fixture.handle.db, 'quickstart', 'dense', changed),
      'changed since run r1: codeVersion "git:test" → "git:next"; config.stage.lr 0.003 → 0.001',
    );
    assert.match(explainCacheMiss(fixture.handle.db, 'quickstart', 'dense', basis), /same inputs as run r1/);
  });
});

