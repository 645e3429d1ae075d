// `sieve compare`: runs recorded in a real SQLite file (through the same records layer the
// recorder uses) compared through the real CLI — recipe differences with defaults filled in and
// stages keyed by id, stage outcomes, metrics with gaps, and the errors.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openDb } from '../../activities/store/db';
import { environment } from '../../activities/store/provenance';
import { createRun, recordMetrics, setRunStatus, upsertStage } from '../../activities/store/writes';
import { CompareOutput } from '../../schemas/cli';
import { parseRecipe } from '../../schemas/recipe-text';
import type { Recipe } from '../../schemas/recipe';
import { sieveSync, tempHome, tinyRecipe } from './helpers';

const home = tempHome('compare');

function recipe(text: string): Recipe {
  const parsed = parseRecipe(text, 'r.yaml');
  assert.ok(parsed.ok);
  return parsed.recipe;
}

const base = recipe(tinyRecipe({ name: 'cmp' }));
// Another seed and learning rate, and a second evaluation stage.
const variant = recipe(`${tinyRecipe({ name: 'cmp', seed: 2 }).replace('lr: 3.0e-3', 'lr: 1.0e-3')}  - { id: again, kind: evaluate, from: dense }\n`);

{
  const { db, close } = openDb({ home });
  const record = (id: string, r: Recipe, losses: Record<string, number>) => {
    createRun(db, { id, recipe: r, codeVersion: 'git:test', environment: environment() });
    for (const stage of r.stages) {
      upsertStage(db, { runId: id, stage, status: 'running', attempt: 1 });
      upsertStage(db, { runId: id, stage, status: 'completed', computeMs: 1500 });
    }
    recordMetrics(db, Object.entries(losses).map(([name, value]) => ({ runId: id, stageId: 'dense', name, value })));
    setRunStatus(db, id, 'completed');
  };
  record('a', base, { 'train/loss': 2.5, 'train/grad_norm': 0.8 });
  record('b', variant, { 'train/loss': 3.1, 'train/grad_norm': Number.NaN });
  close();
}

test('compare --json: differing settings by path, stages and metrics side by side', () => {
  const r = sieveSync(home, ['compare', 'a', 'b', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = CompareOutput.parse(JSON.parse(r.stdout));
  assert.deepEqual(out.runs.map((x) => x.id), ['a', 'b']);
  const diff = Object.fromEntries(out.recipe.map((d) => [d.path, d.values]));
  assert.deepEqual(diff.seed, [1, 2]);
  assert.deepEqual(diff['stages[dense].lr'], [0.003, 0.001]);
  // The default that depends on lr (minLr = lr / 10) differs too, although neither recipe wrote it.
  assert.deepEqual(diff['stages[dense].minLr'], [0.003 / 10, 0.001 / 10]);
  assert.deepEqual(diff['stages[again].kind'], [null, 'evaluate']);
  assert.equal(diff['model.dim'], undefined, 'equal settings are left out');
  const again = out.stages.find((s) => s.id === 'again')!;
  assert.equal(again.runs[0], null);
  assert.equal(again.runs[1]?.status, 'completed');
  const metric = (name: string) => out.metrics.find((m) => m.stage === 'dense' && m.name === name)!.values;
  assert.deepEqual(metric('train/loss'), [2.5, 3.1]);
  assert.deepEqual(metric('train/grad_norm'), [0.8, null], 'NaN has no value');
  assert.deepEqual(out.runs.map((x) => x.stage), [null, null]);
  assert.deepEqual(out.models, [], 'no stage recorded a model');
});

test('compare prints a table per section', () => {
  const r = sieveSync(home, ['compare', 'a', 'b']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /recipe differences\n.*a\s+b\n\s+seed\s+1\s+2/);
  assert.match(r.stdout, /stages\[dense\]\.lr\s+0\.003\s+0\.001/);
  assert.match(r.stdout, /stages\[dense\]\.minLr\s+0\.0003\s+0\.0001\n/);
  assert.match(r.stdout, /dense: train\/loss\s+2\.500\s+3\.100/);
});

test('compare refuses one run, and names a run it does not know', () => {
  const one = sieveSync(home, ['compare', 'a']);
  assert.equal(one.code, 2);
  assert.match(one.stderr, /compare needs two runs \(or run:stage operands\), or one sweep/);
  const ghost = sieveSync(home, ['compare', 'a', 'ghost']);
  assert.equal(ghost.code, 1);
  assert.match(ghost.stderr, /no run "ghost"/);
});
