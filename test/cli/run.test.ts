// `sieve run` end to end on a tiny recipe: real dev server, real engine, real SQLite. Then what a
// researcher does next: status, show (metrics, artifacts whose bytes match their hash), history,
// a second run served from the stage cache, and --no-cache reproducing the same bits.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, test } from 'node:test';
import type { HistoryEntry, ShowOutput, StatusOutput } from '../../schemas/cli';
import { DevServer } from '../../cli/temporal/dev-server';
import { lastJson, sieve, tempHome, tinyRecipe, waitFor, writeRecipe } from './helpers';

const home = tempHome('run');
const recipe = writeRecipe(home, 'tiny.yaml', tinyRecipe());
after(async () => {
  await new DevServer(home).stop();
});

const modelOf = (run: ShowOutput) => run.stages.find((s) => s.id === 'dense')!.artifacts.find((a) => a.role === 'model')!;

let first: ShowOutput;

test('a recipe runs end to end and everything lands in SQLite', { timeout: 300_000 }, async () => {
  const r = await sieve(home, ['run', recipe, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const { id } = lastJson<{ id: string }>(r.stdout);
  assert.match(id, /^tiny-[0-9a-f]{8}$/);

  const show = await sieve(home, ['show', id, '--json']);
  first = JSON.parse(show.stdout) as ShowOutput;
  assert.equal(first.status, 'completed');
  const [dense, report] = first.stages;
  assert.deepEqual([dense.status, report.status], ['completed', 'completed']);
  assert.equal(dense.step, 40);
  assert.ok(dense.metrics['train/loss']! < Math.log(256), 'training moved the loss below the uniform baseline');
  assert.ok(report.metrics['dense/tail/ppl']! > 1 && report.metrics['dense/tail/ppl']! < 256);
  for (const a of [...dense.artifacts, ...report.artifacts]) {
    const bytes = fs.readFileSync(a.path);
    assert.equal(crypto.createHash('sha256').update(bytes).digest('hex'), a.sha256, `${a.path} matches its hash`);
  }
  const checkpoints = dense.artifacts.filter((a) => a.role === 'checkpoint').map((a) => a.step);
  assert.deepEqual(checkpoints, [20, 30], 'a checkpoint every 10 steps; the newest two are kept (keepCheckpoints), the final model is the output');
  assert.ok(report.artifacts.some((a) => a.role === 'input' && a.sha256 === modelOf(first).sha256), 'lineage: the report consumed the dense model');

  const status = JSON.parse((await sieve(home, ['status', id, '--json'])).stdout) as StatusOutput;
  assert.deepEqual(status.stages.map((s) => [s.id, s.status, s.step, s.steps]), [['dense', 'completed', 40, 40], ['report', 'completed', 0, null]]);
});

test('the same recipe again is served from the stage cache', { timeout: 300_000 }, async () => {
  const r = await sieve(home, ['run', recipe, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const { id } = lastJson<{ id: string }>(r.stdout);
  assert.notEqual(id, first.id, 'a new run, linked by its recipe hash');
  const run = JSON.parse((await sieve(home, ['show', id, '--json'])).stdout) as ShowOutput;
  assert.deepEqual(run.stages.map((s) => s.status), ['cached', 'cached']);
  assert.deepEqual(run.stages[0].reusedFrom, { runId: first.id, stageId: 'dense' });
  assert.match(run.stages[0].reason ?? '', /cache hit/);
  assert.equal(modelOf(run).sha256, modelOf(first).sha256);
});

test('--no-cache recomputes and reproduces the same bits', { timeout: 300_000 }, async () => {
  const r = await sieve(home, ['run', recipe, '--no-cache', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const run = JSON.parse((await sieve(home, ['show', lastJson<{ id: string }>(r.stdout).id, '--json'])).stdout) as ShowOutput;
  assert.deepEqual(run.stages.map((s) => s.status), ['completed', 'completed']);
  assert.equal(modelOf(run).sha256, modelOf(first).sha256, 'training is deterministic: same seed, same bits');
  assert.equal(run.stages[1].metrics['dense/tail/ppl'], first.stages[1].metrics['dense/tail/ppl']);
});

test('history lists the runs, filterable by name and status', async () => {
  const all = JSON.parse((await sieve(home, ['history', '--json'])).stdout) as { runs: HistoryEntry[] };
  assert.equal(all.runs.length, 3);
  const none = JSON.parse((await sieve(home, ['history', '--json', '--name', 'other'])).stdout) as { runs: HistoryEntry[] };
  assert.equal(none.runs.length, 0);
  const done = JSON.parse((await sieve(home, ['history', '--json', '--status', 'completed'])).stdout) as { runs: HistoryEntry[] };
  assert.equal(done.runs.length, 3);
});

test('--detach returns at once; a background worker finishes the run, then the server stops', { timeout: 300_000 }, async () => {
  const r = await sieve(home, ['run', recipe, '--no-cache', '--detach', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const { id } = lastJson<{ id: string }>(r.stdout);
  const final = await waitFor('the detached run to finish', async () => {
    const s = JSON.parse((await sieve(home, ['status', id, '--json'])).stdout) as StatusOutput;
    return s.status === 'completed' || s.status === 'failed' ? s : null;
  });
  assert.equal(final.status, 'completed');
  await waitFor('the background worker to leave and the embedded server to stop', () => new DevServer(home).record() === null || null);
  assert.ok(fs.existsSync(path.join(home, 'logs', `${id}.log`)), 'the background worker logs to SIEVE_HOME/logs/<run>.log');
});

test('--seed runs the recipe with another seed: a new recipe hash, other weights, the seed on record', { timeout: 300_000 }, async () => {
  const r = await sieve(home, ['run', recipe, '--seed', '7', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const run = JSON.parse((await sieve(home, ['show', lastJson<{ id: string }>(r.stdout).id, '--json'])).stdout) as ShowOutput;
  assert.equal(run.recipe.seed, 7);
  assert.notEqual(run.recipeHash, first.recipeHash);
  assert.deepEqual(run.stages.map((s) => s.status), ['completed', 'completed'], 'another seed is another computation: no cache hit');
  assert.notEqual(modelOf(run).sha256, modelOf(first).sha256);

  const bad = await sieve(home, ['run', recipe, '--seed=-3']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--seed -3 is not a seed: `seed` must be in \[0, 2\^32 − 1\]/);
  const fraction = await sieve(home, ['run', recipe, '--seed', '1.5']);
  assert.notEqual(fraction.code, 0);
  assert.match(fraction.stderr, /--seed must be a whole number, got "1.5"/);
});
