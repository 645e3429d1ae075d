// The models table: measures read from an evaluate stage's final metrics (every one optional, each
// runtime apart), and the columns shown only where some model has a value.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { recordMetrics, upsertStage } from '../../../activities/store/writes';
import { getRun } from '../../../cli/read-models';
import { measureModel, measuredModels, whyNoModel } from '../../../cli/report/models';
import { modelsTable } from '../../../cli/report/tables';
import { ModelMeasures } from '../../../schemas/cli';
import { report, storeFixture } from '../../activities/store/fixtures';

const { fixture, newRun, completedDense } = storeFixture('report-models');

describe('model measures', () => {
  it('reads every measure an evaluate stage recorded about a model, and leaves the rest null', async () => {
    const { db } = fixture.handle;
    newRun('r');
    await completedDense('r', 'weights', 'k', { kind: 'pretrain', config: {}, inputs: [], dataHash: 'd', codeVersion: 'git:test' });
    upsertStage(db, { runId: 'r', stage: report, status: 'completed' });
    const finals: Record<string, number> = {
      'dense/sotu-recent/ppl': 6.4,
      'dense/sotu-recent/nll': Math.log(6.4),
      'dense/sotu-recent/ppl/onnxruntime': 6.41,
      'dense/moby-dick/ppl': Number.NaN,
      'dense/two_four': 0.5,
      'dense/bits_per_weight': 24,
      'dense/bytes': 3000,
      'dense/native/tokens_per_sec': 1e5,
      'dense/onnxruntime/tokens_per_sec': 2e5,
      'dense/onnxruntime/latency_ms': 3,
    };
    recordMetrics(db, Object.entries(finals).map(([name, value]) => ({ runId: 'r', stageId: 'report', name, value })));

    const run = getRun(db, fixture.store, 'r')!;
    assert.deepEqual(measuredModels(run), ['dense']);
    assert.equal(whyNoModel(run.stages[1]), 'its kind, evaluate, makes a report, not a model');
    const m = ModelMeasures.parse(measureModel(run, 'dense'));
    assert.deepEqual(m.evaluatedBy, ['report']);
    assert.deepEqual(
      [...m.perplexity].sort((a, b) => (a.set + a.runtime < b.set + b.runtime ? -1 : 1)),
      [
        { set: 'moby-dick', runtime: 'native', value: null },
        { set: 'sotu-recent', runtime: 'native', value: 6.4 },
        { set: 'sotu-recent', runtime: 'onnxruntime', value: 6.41 },
      ],
    );
    assert.deepEqual([m.twoFour, m.bitsPerWeight, m.bytes, m.bytesDense, m.params, m.nonzeroParams], [0.5, 24, 3000, null, null, null]);
    assert.deepEqual(m.throughput, [
      { runtime: 'native', tokensPerSec: 1e5, latencyMs: null },
      { runtime: 'onnxruntime', tokensPerSec: 2e5, latencyMs: 3 },
    ]);
  });

  it('the models table has a column only where some model has a value', () => {
    const bare = (stage: string): ModelMeasures => ({
      run: 'r',
      stage,
      kind: 'pretrain',
      evaluatedBy: ['report'],
      perplexity: [{ set: 'tail', runtime: 'native', value: 12.345 }],
      twoFour: null,
      params: null,
      nonzeroParams: null,
      bytes: null,
      bytesDense: null,
      bitsPerWeight: null,
      throughput: [],
    });
    const sparse = { ...bare('sparse'), twoFour: 1, bytes: 72_064, perplexity: [...bare('sparse').perplexity, { set: 'tail', runtime: 'onnxruntime', value: 12.4 }] };
    const [table] = modelsTable([bare('dense'), sparse]);
    assert.deepEqual(table.header, ['', 'ppl tail', 'ppl tail (onnxruntime)', '2:4 share', 'size']);
    assert.deepEqual(table.rows, [
      ['r:dense', '12.35', '-', '-', '-'],
      ['r:sparse', '12.35', '12.40', '100%', '70.4 KiB'],
    ]);
    assert.deepEqual(modelsTable([]), [], 'no models, no table');
  });
});
