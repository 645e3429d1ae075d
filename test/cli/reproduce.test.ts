// `sieve reproduce`: a whole run reproduced with the cache off is bit-identical, stage by stage
// (a model wide enough that its GEMMs are split over both threads); and it names what was not the
// same: the original run's recorded code version and one of its outputs are altered, and a
// reproduction of one stage (--stage) reports the output that differs and the code version as a
// cause, the stages upstream taken from the original run.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, test } from 'node:test';

import Database from 'better-sqlite3';

import { DevServer } from '../../cli/temporal/dev-server';
import type { ReproduceOutput, ShowOutput } from '../../schemas/cli';
import { lastJson, sieve, tempHome, tinyRecipe, writeRecipe } from './helpers';

const home = tempHome('reproduce');
after(async () => {
  await new DevServer(home).stop();
});

test('a whole run reproduced with the cache off: every stage runs again and is bit-identical', { timeout: 300_000 }, async () => {
  const r = await sieve(home, ['run', writeRecipe(home, 'same.yaml', tinyRecipe({ name: 'same', steps: 40, slow: true })), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const id = lastJson<{ id: string }>(r.stdout).id;
  const again = await sieve(home, ['reproduce', id, '--json']);
  assert.equal(again.code, 0, again.stderr);
  const reproduction = lastJson<ReproduceOutput>(again.stdout);
  assert.equal(reproduction.reproduces, id);
  assert.equal(reproduction.identical, true);
  assert.deepEqual(reproduction.stages.map((s) => [s.id, s.identical, s.causes]), [['dense', true, []], ['report', true, []]], JSON.stringify(reproduction));
  const reproduced = JSON.parse((await sieve(home, ['show', reproduction.id, '--json'])).stdout) as ShowOutput;
  assert.equal(reproduced.reproduces, id);
  assert.ok(reproduced.stages.every((s) => s.status === 'completed' && s.reason === 'cache disabled (--no-cache)'), 'every stage ran again');
});

test('a stage reproduced with another code version: the differing output and the cause are named', { timeout: 300_000 }, async () => {
  const r = await sieve(home, ['run', writeRecipe(home, 'tiny.yaml', tinyRecipe({ name: 'reproduce', steps: 20 })), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const id = lastJson<{ id: string }>(r.stdout).id;
  const db = new Database(path.join(home, 'sieve.db'));
  try {
    db.pragma('foreign_keys = OFF');
    db.prepare('UPDATE runs SET code_version = ? WHERE id = ?').run('git:0000000000000000000000000000000000000000', id);
    // the report as if the old code had written other bytes: the model's, which is a stored artifact
    const model = db.prepare("SELECT sha256 FROM stage_artifacts WHERE run_id = ? AND stage_id = 'dense' AND role = 'model'").get(id) as { sha256: string };
    db.prepare("UPDATE stage_artifacts SET sha256 = ? WHERE run_id = ? AND stage_id = 'report' AND role = 'report'").run(model.sha256, id);
  } finally {
    db.close();
  }

  const again = await sieve(home, ['reproduce', id, '--stage', 'report', '--json']);
  assert.equal(again.code, 1, 'a stage that does not reproduce fails the command');
  const report = lastJson<ReproduceOutput>(again.stdout);
  assert.equal(report.identical, false);
  assert.equal(report.stages.length, 1);
  const [stage] = report.stages;
  assert.equal(stage.id, 'report');
  assert.deepEqual(stage.differs.map((d) => d.role), ['report']);
  assert.ok(stage.causes.some((c) => c.startsWith('code version: git:0000000000000000000000000000000000000000 → ')), JSON.stringify(stage.causes));
  const reproduced = JSON.parse((await sieve(home, ['show', report.id, '--json'])).stdout) as ShowOutput;
  assert.deepEqual(reproduced.stages.map((s) => [s.id, s.status]), [['dense', 'reused'], ['report', 'completed']]);

  const text = await sieve(home, ['reproduce', id, '--stage', 'nope']);
  assert.equal(text.code, 2);
  assert.match(text.stderr, /the recipe has no stage "nope"; its stages are dense, report/);
});
