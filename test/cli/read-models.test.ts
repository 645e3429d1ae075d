// The CLI's read models: the shapes of `sieve history`, `sieve show` and `sieve status` --json,
// built from what the recorder wrote; and the per-step curves the HTML reports draw.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';

import { linkArtifacts, recordMetrics, setRunStatus, upsertStage } from '../../activities/store/writes';
import { stageCacheKey } from '../../activities/store/cache';
import { getRun, getRunStatus, listRuns, metricCurve } from '../../cli/read-models';
import { HistoryOutput, ShowOutput, StatusOutput } from '../../schemas/cli';
import { cacheInput, dense, quickstart, report, storeFixture } from '../activities/store/fixtures';

const { fixture, newRun, completedDense } = storeFixture('read-models');

describe('read models', () => {
  it('listRuns filters by name and status, newest first', () => {
    newRun('a');
    newRun('b', { ...quickstart, name: 'other' });
    newRun('c');
    setRunStatus(fixture.handle.db, 'c', 'completed');
    const all = listRuns(fixture.handle.db);
    HistoryOutput.parse({ runs: all });
    assert.deepEqual(all.map((r) => r.id).sort(), ['a', 'b', 'c']);
    assert.deepEqual(listRuns(fixture.handle.db, { name: 'quickstart' }).map((r) => r.id).sort(), ['a', 'c']);
    assert.deepEqual(listRuns(fixture.handle.db, { name: 'quickstart', status: 'completed' }).map((r) => r.id), ['c']);
    assert.equal(listRuns(fixture.handle.db, { limit: 1 }).length, 1);
  });

  it('getRun has the shape of `sieve show --json`, with absolute artifact paths and lineage', async () => {
    newRun('parent');
    const basis = cacheInput(quickstart, dense);
    const model = await completedDense('parent', 'show model', stageCacheKey(basis), basis);
    newRun('child', quickstart, 'parent');
    setRunStatus(fixture.handle.db, 'child', 'running');
    upsertStage(fixture.handle.db, {
      runId: 'child',
      stage: dense,
      status: 'reused',
      reusedFrom: { runId: 'parent', stageId: 'dense' },
      reason: 'finished in the parent run',
    });
    linkArtifacts(fixture.handle.db, [{ runId: 'child', stageId: 'dense', role: 'model', artifact: { ...model, kind: 'model' } }]);
    upsertStage(fixture.handle.db, { runId: 'child', stage: report, status: 'completed' });
    recordMetrics(fixture.handle.db, [{ runId: 'child', stageId: 'report', name: 'ppl/sotu-recent', value: 4.2, protocolHash: 'p' }]);

    const shown = ShowOutput.parse(getRun(fixture.handle.db, fixture.store, 'child'));
    assert.equal(shown.parentRunId, 'parent');
    assert.deepEqual(shown.stages.map((s) => [s.id, s.status, s.cached]), [
      ['dense', 'reused', true],
      ['report', 'completed', false],
    ]);
    assert.deepEqual(shown.stages[0].reusedFrom, { runId: 'parent', stageId: 'dense' });
    assert.equal(shown.stages[0].artifacts[0].path, model.path);
    assert.ok(path.isAbsolute(shown.stages[0].artifacts[0].path));
    assert.deepEqual(shown.stages[1].from, ['dense']);
    assert.deepEqual(shown.stages[1].metrics, { 'ppl/sotu-recent': 4.2 });
    assert.equal(getRun(fixture.handle.db, fixture.store, 'nope'), null);

    const status = StatusOutput.parse(getRunStatus(fixture.handle.db, 'child'));
    assert.deepEqual(status.stages, [
      { id: 'dense', status: 'reused', step: 0, steps: 800 },
      { id: 'report', status: 'completed', step: 0, steps: null },
    ]);
  });

  it('metricCurve reads a cached stage\'s curve from the stage that computed it, through a chain of reuses', () => {
    const { db } = fixture.handle;
    for (const id of ['first', 'second', 'third']) newRun(id);
    upsertStage(db, { runId: 'first', stage: dense, status: 'completed' });
    recordMetrics(db, [
      { runId: 'first', stageId: 'dense', step: 2, name: 'train/loss', value: 4 },
      { runId: 'first', stageId: 'dense', step: 1, name: 'train/loss', value: 5 },
      { runId: 'first', stageId: 'dense', step: 3, name: 'train/loss', value: Number.NaN },
      { runId: 'first', stageId: 'dense', step: 1, name: 'train/lr', value: 0.1 },
      { runId: 'first', stageId: 'dense', name: 'train/loss', value: 4 },
    ]);
    upsertStage(db, { runId: 'second', stage: dense, status: 'cached', reusedFrom: { runId: 'first', stageId: 'dense' } });
    upsertStage(db, { runId: 'third', stage: dense, status: 'reused', reusedFrom: { runId: 'second', stageId: 'dense' } });
    // The recorder copies a cached stage's final values, not its curve.
    recordMetrics(db, [{ runId: 'third', stageId: 'dense', name: 'train/loss', value: 4 }]);

    const curve = metricCurve(db, { runId: 'third', stageId: 'dense' }, 'train/loss');
    assert.deepEqual(curve.source, { runId: 'first', stageId: 'dense' });
    assert.deepEqual(curve.points, [
      { step: 1, value: 5 },
      { step: 2, value: 4 },
      { step: 3, value: null },
    ]);
    assert.deepEqual(metricCurve(db, { runId: 'first', stageId: 'report' }, 'train/loss'), { source: { runId: 'first', stageId: 'report' }, points: [] });
  });
});

