// The records layer: idempotent writes (Temporal retries every activity), the stage cache
// lookup with artifact verification, explained cache misses, the hash-chained journal, and
// read models that match the CLI's --json schemas.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';

import { sql } from 'drizzle-orm';

import { createArtifactStore } from '../../../activities/store/artifacts';
import { openDb, type SieveDatabase } from '../../../activities/store/db';
import {
  appendEvent,
  codeVersion,
  createRun,
  environment,
  explainCacheMiss,
  findCachedStage,
  getRun,
  getRunStatus,
  linkArtifacts,
  listEvents,
  listMetrics,
  listRuns,
  recipeHash,
  recordMetric,
  recordMetrics,
  setRunStatus,
  stageCacheKey,
  upsertStage,
  verifyEventChain,
  type StageCacheInput,
} from '../../../activities/store/records';
import { HistoryOutput, ShowOutput, StatusOutput } from '../../../schemas/cli';
import { stageCacheConfig, type Recipe, type RecipeStage } from '../../../schemas/recipe';
import { parseRecipe } from '../../../schemas/recipe-text';
import { Environment } from '../../../schemas/tables';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'sieve-records-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const quickstart = (() => {
  const file = path.resolve(__dirname, '../../../examples/quickstart.yaml');
  const parsed = parseRecipe(readFileSync(file, 'utf8'), file);
  assert.ok(parsed.ok);
  return parsed.recipe;
})();
const [dense, report] = quickstart.stages as [RecipeStage, RecipeStage];
const env = environment({ blas: 'OpenBLAS 0.3.21' });

let handle: SieveDatabase;
const store = createArtifactStore(path.join(scratch, 'home'));
beforeEach(() => {
  handle?.close();
  handle = openDb({ file: ':memory:' });
});
after(() => handle?.close());

function newRun(id: string, recipe: Recipe = quickstart, parentRunId: string | null = null) {
  return createRun(handle.db, { id, recipe, codeVersion: 'git:test', environment: env, parentRunId });
}

function cacheInput(recipe: Recipe, stage: RecipeStage, inputs: string[] = []): StageCacheInput {
  return { kind: stage.kind, config: stageCacheConfig(recipe, stage), inputs, dataHash: 'd'.repeat(64), codeVersion: 'git:test' };
}

/** A completed dense stage with one model artifact, as the recorder would leave it. */
async function completedDense(runId: string, content: string, key: string, basis: StageCacheInput) {
  upsertStage(handle.db, { runId, stage: dense, status: 'running', attempt: 1 });
  const model = await store.put(Buffer.from(content));
  linkArtifacts(handle.db, [{ runId, stageId: dense.id, role: 'model', artifact: { ...model, kind: 'model' } }]);
  recordMetrics(handle.db, [{ runId, stageId: dense.id, name: 'loss', value: 1.5 }]);
  upsertStage(handle.db, { runId, stage: dense, status: 'completed', step: 800, cacheKey: key, cacheBasis: basis, computeMs: 1234.4 });
  return model;
}

describe('runs', () => {
  it('createRun is idempotent on the run id and journals once', () => {
    const first = newRun('r1');
    const again = newRun('r1');
    assert.deepEqual(again, first);
    assert.equal(first.recipeHash, recipeHash(quickstart));
    assert.equal(first.status, 'pending');
    assert.deepEqual(listEvents(handle.db, 'r1').map((e) => e.type), ['run.created']);
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
    const running = setRunStatus(handle.db, 'r1', 'running');
    assert.ok(running.startedAt && running.finishedAt === null);
    setRunStatus(handle.db, 'r1', 'running');
    const failed = setRunStatus(handle.db, 'r1', 'failed', 'stage dense failed');
    assert.ok(failed.finishedAt);
    assert.deepEqual(failed.startedAt, running.startedAt);
    assert.equal(failed.error, 'stage dense failed');
    assert.deepEqual(listEvents(handle.db, 'r1').map((e) => e.type), ['run.created', 'run.running', 'run.failed']);
    assert.throws(() => setRunStatus(handle.db, 'nope', 'running'), /no run nope/);
  });

  it('listRuns filters by name and status, newest first', () => {
    newRun('a');
    newRun('b', { ...quickstart, name: 'other' });
    newRun('c');
    setRunStatus(handle.db, 'c', 'completed');
    const all = listRuns(handle.db);
    HistoryOutput.parse({ runs: all });
    assert.deepEqual(all.map((r) => r.id).sort(), ['a', 'b', 'c']);
    assert.deepEqual(listRuns(handle.db, { name: 'quickstart' }).map((r) => r.id).sort(), ['a', 'c']);
    assert.deepEqual(listRuns(handle.db, { name: 'quickstart', status: 'completed' }).map((r) => r.id), ['c']);
    assert.equal(listRuns(handle.db, { limit: 1 }).length, 1);
  });
});

describe('stages and metrics', () => {
  it('upsertStage creates, then updates only the fields given', () => {
    newRun('r1');
    const created = upsertStage(handle.db, { runId: 'r1', stage: dense, status: 'running', attempt: 1 });
    assert.equal(created.steps, 800);
    assert.equal(created.kind, 'pretrain');
    assert.deepEqual(created.config, dense);
    const progressed = upsertStage(handle.db, { runId: 'r1', stage: dense, step: 120 });
    assert.equal(progressed.status, 'running');
    assert.equal(progressed.attempt, 1);
    assert.equal(progressed.step, 120);
    const retried = upsertStage(handle.db, { runId: 'r1', stage: dense, attempt: 2 });
    assert.deepEqual(retried.startedAt, created.startedAt, 'a retry keeps the first start');
    const done = upsertStage(handle.db, { runId: 'r1', stage: dense, status: 'completed', step: 800, computeMs: 99.6 });
    assert.ok(done.finishedAt);
    assert.equal(done.computeMs, 100);
    assert.deepEqual(
      listEvents(handle.db, 'r1').filter((e) => e.stageId === 'dense').map((e) => e.type),
      ['stage.running', 'stage.completed'],
    );
  });

  it('recording a metric again replaces it, for steps and for the final value', () => {
    newRun('r1');
    upsertStage(handle.db, { runId: 'r1', stage: dense, status: 'running' });
    const at = (step: number | null, value: number) => ({ runId: 'r1', stageId: 'dense', name: 'loss', step, value });
    recordMetrics(handle.db, [at(10, 3.2), at(20, 2.9), at(null, 2.5)]);
    recordMetrics(handle.db, [at(10, 3.2), at(20, 2.8), at(null, 2.4)]); // a retried activity
    recordMetric(handle.db, { runId: 'r1', stageId: 'dense', name: 'grad_norm', value: Number.NaN });
    const rows = listMetrics(handle.db, 'r1', 'dense');
    assert.deepEqual(
      rows.map((r) => [r.name, r.step, r.value]),
      [
        ['loss', 10, 3.2],
        ['loss', 20, 2.8],
        ['loss', null, 2.4],
        ['grad_norm', null, null],
      ],
    );
    assert.deepEqual(listMetrics(handle.db, 'r1', 'dense', 'loss').length, 3);
  });

  it('a metric for a stage that was never recorded is refused (foreign key)', () => {
    newRun('r1');
    assert.throws(() => recordMetric(handle.db, { runId: 'r1', stageId: 'ghost', name: 'loss', value: 1 }), /FOREIGN KEY/);
  });
});

describe('artifacts and the stage cache', () => {
  it('linking is idempotent and the first maker is the producer', async () => {
    newRun('r1');
    upsertStage(handle.db, { runId: 'r1', stage: dense, status: 'running' });
    upsertStage(handle.db, { runId: 'r1', stage: report, status: 'running' });
    const model = await store.put(Buffer.from('model r1'));
    const link = { runId: 'r1', stageId: 'dense', role: 'model', artifact: { ...model, kind: 'model' as const } };
    linkArtifacts(handle.db, [link, link]);
    linkArtifacts(handle.db, [{ ...link, stageId: 'report', role: 'input' }]);
    const rows = handle.db.all<{ produced_by_stage_id: string; path: string }>(sql`SELECT * FROM artifacts`);
    assert.equal(rows.length, 1);
    assert.equal(rows[0].produced_by_stage_id, 'dense');
    assert.equal(rows[0].path, `artifacts/${model.sha256.slice(0, 2)}/${model.sha256}`);
    assert.equal(handle.db.all(sql`SELECT * FROM stage_artifacts`).length, 2);
  });

  it('finds a completed stage by cache key, with verified artifacts and final metrics', async () => {
    newRun('r1');
    const basis = cacheInput(quickstart, dense);
    const key = stageCacheKey(basis);
    const model = await completedDense('r1', 'model for cache', key, basis);
    const hit = await findCachedStage(handle.db, store, key);
    assert.ok(hit);
    assert.equal(hit.runId, 'r1');
    assert.deepEqual(hit.metrics, { loss: 1.5 });
    assert.deepEqual(hit.artifacts.map((a) => [a.sha256, a.role, a.path]), [[model.sha256, 'model', model.path]]);
    assert.equal(await findCachedStage(handle.db, store, 'f'.repeat(64)), null);
  });

  it('does not need the mid-stage checkpoints of a finished stage', async () => {
    newRun('r1');
    const basis = cacheInput(quickstart, dense);
    const key = stageCacheKey(basis);
    const model = await completedDense('r1', 'model with checkpoints', key, basis);
    const checkpoint = await store.put(Buffer.from('checkpoint at 50'));
    linkArtifacts(handle.db, [{ runId: 'r1', stageId: 'dense', role: 'checkpoint', step: 50, artifact: { ...checkpoint, kind: 'checkpoint' } }]);
    chmodSync(checkpoint.path, 0o644);
    unlinkSync(checkpoint.path); // pruned to save disk
    const hit = await findCachedStage(handle.db, store, key);
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
    assert.equal((await findCachedStage(handle.db, store, key))?.runId, 'old', 'the corrupt newer one is skipped');
    const old = (await findCachedStage(handle.db, store, key))!.artifacts[0];
    unlinkSync(old.path);
    assert.equal(await findCachedStage(handle.db, store, key), null);
  });

  it('a stage served from the cache is not itself a candidate', async () => {
    const basis = cacheInput(quickstart, dense);
    const key = stageCacheKey(basis);
    newRun('origin');
    await completedDense('origin', 'origin model', key, basis);
    newRun('copy');
    upsertStage(handle.db, {
      runId: 'copy',
      stage: dense,
      status: 'completed',
      cacheKey: key,
      reusedFrom: { runId: 'origin', stageId: 'dense' },
      reason: 'cache hit',
    });
    assert.equal((await findCachedStage(handle.db, store, key))?.runId, 'origin');
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
      explainCacheMiss(handle.db, 'quickstart', 'dense', cacheInput(quickstart, dense)),
      'no finished "dense" stage of an earlier "quickstart" run to reuse',
    );
    const basis = cacheInput(quickstart, dense);
    newRun('r1');
    await completedDense('r1', 'explain', stageCacheKey(basis), basis);
    const otherLr = { ...quickstart, stages: [{ ...dense, lr: 0.001 }, report] } as Recipe;
    const changed = { ...cacheInput(otherLr, otherLr.stages[0]), codeVersion: 'git:next' };
    assert.equal(
      explainCacheMiss(handle.db, 'quickstart', 'dense', changed),
      'changed since run r1: codeVersion "git:test" → "git:next"; config.stage.lr 0.003 → 0.001',
    );
    assert.match(explainCacheMiss(handle.db, 'quickstart', 'dense', basis), /same inputs as run r1/);
  });
});

describe('events', () => {
  it('are ordered, chained per run, and tampering breaks the chain', () => {
    newRun('r1');
    newRun('r2');
    appendEvent(handle.db, { runId: 'r1', type: 'stage.resumed', stageId: 'dense', payload: { step: 150 } });
    appendEvent(handle.db, { runId: 'r2', type: 'note' });
    const last = appendEvent(handle.db, { runId: 'r1', type: 'stage.cache-miss', stageId: 'dense', payload: { reason: 'x' } });
    assert.deepEqual(verifyEventChain(handle.db, 'r1'), { ok: true, events: 3 });
    assert.deepEqual(listEvents(handle.db, 'r1', last.id - 1).map((e) => e.id), [last.id]);
    const resumed = listEvents(handle.db, 'r1')[1];
    handle.db.run(sql`UPDATE events SET payload = '{"step":151}' WHERE id = ${resumed.id}`);
    assert.deepEqual(verifyEventChain(handle.db, 'r1'), { ok: false, brokenAt: resumed.id });
    assert.deepEqual(verifyEventChain(handle.db, 'r2'), { ok: true, events: 2 });
  });
});

describe('read models', () => {
  it('getRun has the shape of `sieve show --json`, with absolute artifact paths and lineage', async () => {
    newRun('parent');
    const basis = cacheInput(quickstart, dense);
    const model = await completedDense('parent', 'show model', stageCacheKey(basis), basis);
    newRun('child', quickstart, 'parent');
    setRunStatus(handle.db, 'child', 'running');
    upsertStage(handle.db, {
      runId: 'child',
      stage: dense,
      status: 'reused',
      reusedFrom: { runId: 'parent', stageId: 'dense' },
      reason: 'finished in the parent run',
    });
    linkArtifacts(handle.db, [{ runId: 'child', stageId: 'dense', role: 'model', artifact: { ...model, kind: 'model' } }]);
    upsertStage(handle.db, { runId: 'child', stage: report, status: 'completed' });
    recordMetrics(handle.db, [{ runId: 'child', stageId: 'report', name: 'ppl/sotu-recent', value: 4.2, protocolHash: 'p' }]);

    const shown = ShowOutput.parse(getRun(handle.db, store, 'child'));
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
    assert.equal(getRun(handle.db, store, 'nope'), null);

    const status = StatusOutput.parse(getRunStatus(handle.db, 'child'));
    assert.deepEqual(status.stages, [
      { id: 'dense', status: 'reused', step: 0, steps: 800 },
      { id: 'report', status: 'completed', step: 0, steps: null },
    ]);
  });
});

describe('identities', () => {
  it('codeVersion names the git commit (and a dirty tree) or the package version', () => {
    assert.match(codeVersion(), /^(git:[0-9a-f]{40}(\+dirty\.[0-9a-f]{16})?|package:\d+\.\d+\.\d+)$/);
    assert.equal(codeVersion(), codeVersion(), 'fixed for the life of the process');
  });

  it('environment is a valid snapshot and records only the listed variables', () => {
    const snapshot = Environment.parse(environment({ blas: 'OpenBLAS', gpu: null }));
    assert.equal(snapshot.blas, 'OpenBLAS');
    assert.equal(snapshot.node, process.version);
    assert.ok(Object.keys(snapshot.env).every((k) => /^(SIEVE_|TEMPORAL_|OMP_|OPENBLAS_|MKL_|CUDA_|CUBLAS_)/.test(k)));
    assert.match(snapshot.lockfile ?? '', /^[0-9a-f]{64}$/);
  });
});
