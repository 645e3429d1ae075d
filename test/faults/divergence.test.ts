// Divergence, through the real CLI (embedded dev server, in-process workers, real SQLite): a
// stage whose loss turns NaN fails at its first attempt as diverged, naming the step; the run
// fails, its dependants are skipped, and the next run of the same recipe computes the stage again
// instead of taking it from the cache. Under `onNonFinite: skip-step` a non-finite step (a NaN
// gradient injected into the worker's engine, test/faults/poison-gradients.js) is skipped, counted
// and journaled, and the stage completes. Each earlier run and its artifacts stay as they were.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { and, eq } from 'drizzle-orm';

import { createArtifactStore } from '../../activities/store/artifacts';
import { openDb } from '../../activities/store/db';
import type { ShowOutput } from '../../schemas/cli';
import { events } from '../../schemas/tables';
import { lastJson, sieve, tempHome, tinyRecipe, writeRecipe } from '../cli/helpers';

const home = tempHome('divergence');
const show = async (id: string) => JSON.parse((await sieve(home, ['show', id, '--json'])).stdout) as ShowOutput;
const runId = (stdout: string) => lastJson<{ id: string }>(stdout).id;
const dense = (run: ShowOutput) => run.stages.find((s) => s.id === 'dense')!;
const outputs = (run: ShowOutput) => run.stages.flatMap((s) => s.artifacts.filter((a) => a.role !== 'input' && a.role !== 'checkpoint' && a.role !== 'history-segment'));

async function verifyAll(artifacts: Array<{ sha256: string }>) {
  const store = createArtifactStore(home);
  for (const a of artifacts) await store.verify(a.sha256);
}

test('skip-step: a non-finite step is skipped and counted, and the stage completes', { timeout: 120_000 }, async () => {
  const recipe = writeRecipe(home, 'skip.yaml', tinyRecipe({ name: 'skip', steps: 30 }).replace('checkpointEvery: 10 }', 'checkpointEvery: 10, onNonFinite: skip-step }'));
  // The 6th step's gradient is NaN (the optimizer has applied 5 updates by then).
  const poisoned = { NODE_OPTIONS: `--require ${path.join(__dirname, 'poison-gradients.js')}`, SIEVE_TEST_POISON_AT: '5' };
  const r = await sieve(home, ['run', recipe, '--json'], poisoned);
  assert.equal(r.code, 0, r.stderr);
  const run = await show(runId(r.stdout));
  assert.deepEqual(run.stages.map((s) => s.status), ['completed', 'completed']);
  assert.equal(dense(run).metrics['train/skipped_steps'], 1);
  assert.equal(dense(run).metrics['train/skipped'], 1, 'the skipped step has its per-step mark');
  const { db, close } = openDb({ home });
  try {
    const skipped = db.select().from(events).where(and(eq(events.runId, run.id), eq(events.type, 'stage.step-skipped'))).all();
    assert.deepEqual(skipped.map((e) => e.payload), [{ step: 6, quantity: 'gradient norm', value: 'NaN', inARow: 1, attempt: 1 }]);
  } finally {
    close();
  }
});

test('lr 1e9: the stage fails at its first attempt as diverged, and a failed stage is never served from the cache', { timeout: 120_000 }, async () => {
  const before = (JSON.parse((await sieve(home, ['history', '--json'])).stdout) as { runs: Array<{ id: string }> }).runs.map((r) => r.id);
  const earlier = await Promise.all(before.map(show));
  const recipe = writeRecipe(home, 'nan.yaml', tinyRecipe({ name: 'nan', steps: 30 }).replace('lr: 3.0e-3', 'lr: 1.0e+9, weightDecay: 0'));

  const first = await sieve(home, ['run', recipe, '--json']);
  assert.equal(first.code, 1, first.stderr);
  const failed = await show(runId(first.stdout));
  assert.equal(failed.status, 'failed');
  assert.equal(failed.error, 'stage dense failed');
  assert.deepEqual(failed.stages.map((s) => s.status), ['failed', 'skipped']);
  assert.equal(dense(failed).attempt, 1, 'not retried');
  assert.match(dense(failed).error ?? '', /^diverged at step (\d+): the (loss|gradient norm) is (NaN|-?Infinity); lower `lr`, or set `onNonFinite: skip-step` to skip such steps$/);
  assert.equal(outputs(failed).length, 0, 'a diverged stage hands on nothing');

  const second = await sieve(home, ['run', recipe, '--json']);
  assert.equal(second.code, 1, second.stderr);
  const again = await show(runId(second.stdout));
  assert.deepEqual(again.stages.map((s) => s.status), ['failed', 'skipped']);
  assert.equal(dense(again).cached, false);
  assert.doesNotMatch(dense(again).reason ?? '', /cache hit/);
  assert.equal(dense(again).error, dense(failed).error, 'the same bits diverge at the same step');

  // Earlier runs are as they were, and their outputs still verify.
  assert.deepEqual(await show(failed.id), failed);
  for (const run of earlier) {
    assert.deepEqual(await show(run.id), run);
    await verifyAll(outputs(run));
  }
});
