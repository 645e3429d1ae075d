// The per-table writes and the journal: idempotent (Temporal retries every activity), status
// changes journaled, metrics replaced on repeat, artifact links recording the first producer, and
// a hash-chained journal that shows tampering.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { sql } from 'drizzle-orm';

import { recipeHash } from '../../../activities/store/hash';
import { appendEvent, listEvents, verifyEventChain } from '../../../activities/store/journal';
import { listMetrics } from '../../../activities/store/reads';
import { linkArtifacts, recordMetrics, setRunStatus, upsertStage } from '../../../activities/store/writes';
import { dense, quickstart, report, storeFixture } from './fixtures';

const { fixture, newRun } = storeFixture('writes');

describe('runs', () => {
  it('createRun is idempotent on the run id and journals once', () => {
    const first = newRun('r1');
    const again = newRun('r1');
    assert.deepEqual(again, first);
    assert.equal(first.recipeHash, recipeHash(quickstart));
    assert.equal(first.status, 'pending');
    assert.deepEqual(listEvents(fixture.handle.db, 'r1').map((e) => e.type), ['run.created']);
  });

  it('createRun refuses to reuse a run id for another recipe', () => {
    newRun('r1');
    assert.throws(() => newRun('r1', { ...quickstart, seed: 5 }), /run r1 already exists with a different recipe/);
  });

  it('createRun checks that a parent run exists', () => {
    assert.throws(() => newRun('child', quickstart, 'ghost'), /names parent run ghost, which is not in the database/);
  });

  it('setRunStatus stamps times and journals only changes', () => {
    newRun('r1');
    const running = setRunStatus(fixture.handle.db, 'r1', 'running');
    assert.ok(running.startedAt && running.finishedAt === null);
    setRunStatus(fixture.handle.db, 'r1', 'running');
    const failed = setRunStatus(fixture.handle.db, 'r1', 'failed', 'stage dense failed');
    assert.ok(failed.finishedAt);
    assert.deepEqual(failed.startedAt, running.startedAt);
    assert.equal(failed.error, 'stage dense failed');
    assert.deepEqual(listEvents(fixture.handle.db, 'r1').map((e) => e.type), ['run.created', 'run.running', 'run.failed']);
    assert.throws(() => setRunStatus(fixture.handle.db, 'nope', 'running'), /no run nope/);
  });
});

describe('stages and metrics', () => {
  it('upsertStage creates, then updates only the fields given', () => {
    newRun('r1');
    const created = upsertStage(fixture.handle.db, { runId: 'r1', stage: dense, status: 'running', attempt: 1 });
    assert.equal(created.steps, 800);
    assert.equal(created.kind, 'pretrain');
    assert.deepEqual(created.config, dense);
    const progressed = upsertStage(fixture.handle.db, { runId: 'r1', stage: dense, step: 120 });
    assert.equal(progressed.status, 'running');
    assert.equal(progressed.attempt, 1);
    assert.equal(progressed.step, 120);
    const retried = upsertStage(fixture.handle.db, { runId: 'r1', stage: dense, attempt: 2 });
    assert.deepEqual(retried.startedAt, created.startedAt, 'a retry keeps the first start');
    const done = upsertStage(fixture.handle.db, { runId: 'r1', stage: dense, status: 'completed', step: 800, computeMs: 99.6 });
    assert.ok(done.finishedAt);
    assert.equal(done.computeMs, 100);
    assert.deepEqual(
      listEvents(fixture.handle.db, 'r1').filter((e) => e.stageId === 'dense').map((e) => e.type),
      ['stage.running', 'stage.completed'],
    );
  });

  it('recording a metric again replaces it, for steps and for the final value', () => {
    newRun('r1');
    upsertStage(fixture.handle.db, { runId: 'r1', stage: dense, status: 'running' });
    const at = (step: number | null, value: number) => ({ runId: 'r1', stageId: 'dense', name: 'loss', step, value });
    recordMetrics(fixture.handle.db, [at(10, 3.2), at(20, 2.9), at(null, 2.5)]);
    recordMetrics(fixture.handle.db, [at(10, 3.2), at(20, 2.8), at(null, 2.4)]); // a retried activity
    recordMetrics(fixture.handle.db, [{ runId: 'r1', stageId: 'dense', name: 'grad_norm', value: Number.NaN }]);
    const rows = listMetrics(fixture.handle.db, 'r1', 'dense');
    assert.deepEqual(
      rows.map((r) => [r.name, r.step, r.value]),
      [
        ['loss', 10, 3.2],
        ['loss', 20, 2.8],
        ['loss', null, 2.4],
        ['grad_norm', null, null],
      ],
    );
    assert.deepEqual(listMetrics(fixture.handle.db, 'r1', 'dense', 'loss').length, 3);
  });

  it('a metric for a stage that was never recorded is refused (foreign key)', () => {
    newRun('r1');
    assert.throws(() => recordMetrics(fixture.handle.db, [{ runId: 'r1', stageId: 'ghost', name: 'loss', value: 1 }]), /FOREIGN KEY/);
  });
});

describe('artifacts', () => {
  it('linking is idempotent and the first maker is the producer', async () => {
    newRun('r1');
    upsertStage(fixture.handle.db, { runId: 'r1', stage: dense, status: 'running' });
    upsertStage(fixture.handle.db, { runId: 'r1', stage: report, status: 'running' });
    const model = await fixture.store.put(Buffer.from('model r1'));
    const link = { runId: 'r1', stageId: 'dense', role: 'model', artifact: { ...model, kind: 'model' as const } };
    linkArtifacts(fixture.handle.db, [link, link]);
    linkArtifacts(fixture.handle.db, [{ ...link, stageId: 'report', role: 'input' }]);
    const rows = fixture.handle.db.all<{ produced_by_stage_id: string; path: string }>(sql`SELECT * FROM artifacts`);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].produced_by_stage_id, 'dense');
    assert.equal(rows[0].path, `artifacts/${model.sha256.slice(0, 2)}/${model.sha256}`);
    assert.equal(fixture.handle.db.all(sql`SELECT * FROM stage_artifacts`).length, 2);
  });
});

describe('events', () => {
  it('are ordered, chained per run, and tampering breaks the chain', () => {
    newRun('r1');
    newRun('r2');
    appendEvent(fixture.handle.db, { runId: 'r1', type: 'stage.resumed', stageId: 'dense', payload: { step: 150 } });
    appendEvent(fixture.handle.db, { runId: 'r2', type: 'note' });
    const last = appendEvent(fixture.handle.db, { runId: 'r1', type: 'stage.cache-miss', stageId: 'dense', payload: { reason: 'x' } });
    assert.deepEqual(verifyEventChain(fixture.handle.db, 'r1'), { ok: true, events: 3 });
    assert.deepEqual(listEvents(fixture.handle.db, 'r1', last.id - 1).map((e) => e.id), [last.id]);
    const resumed = listEvents(fixture.handle.db, 'r1')[1];
    fixture.handle.db.run(sql`UPDATE events SET payload = '{"step":151}' WHERE id = ${resumed.id}`);
    assert.deepEqual(verifyEventChain(fixture.handle.db, 'r1'), { ok: false, brokenAt: resumed.id });
    assert.deepEqual(verifyEventChain(fixture.handle.db, 'r2'), { ok: true, events: 2 });
  });
});

