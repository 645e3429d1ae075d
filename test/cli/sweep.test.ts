// Sweeps through the real CLI, with a Temporal server and workers of their own: 2 settings × 2 seeds
// of one recipe compute the stage they share (a dense model with its own seed) once, as a run of
// its own, and every point takes it; a worker SIGKILLed mid-sweep is replaced and the sweep ends
// complete; `sieve compare <sweep>` gives mean ± sd over the seeds per setting; a sweep cancelled
// mid-way is continued by `sieve resume <sweep>`.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import Database from 'better-sqlite3';

import type { SweepCompareOutput, SweepOutput } from '../../schemas/cli';
import { lastJson, serve, sieve, startServer, stopAll, tempHome, waitFor, writeRecipe } from './helpers';

const home = tempHome('sweep');
let server: ChildProcess;
let remote: { TEMPORAL_ADDRESS: string };
before(async () => {
  const started = await startServer(home);
  server = started.child;
  remote = started.remote;
});
after(async () => {
  await stopAll(server);
});

const recipe = writeRecipe(
  home,
  'sweep.yaml',
  `name: sweep
seed: 1
model: { family: gpt2, layers: 2, dim: 64, heads: 4, context: 64, tokenizer: bytes }
data:
  corpus: moby-dick
  train: { items: [3, 40] }
  eval:
    tail: { corpus: moby-dick, items: [130, 134] }
stages:
  - { id: dense, kind: pretrain, seed: 7, steps: 30, batch: 8, lr: 3.0e-3, checkpointEvery: 30 }
  - { id: ft, kind: pretrain, from: dense, steps: 150, batch: 16, lr: 1.0e-3, checkpointEvery: 25 }
  - { id: report, kind: evaluate, from: ft }
`,
);

/** Stage rows straight from SQLite: fast enough to catch a stage mid-way. */
function stageRows(where: string, ...args: unknown[]): { run_id: string; stage_id: string; status: string; step: number; attempt: number; reason: string | null }[] {
  let db: Database.Database | null = null;
  try {
    db = new Database(path.join(home, 'sieve.db'), { readonly: true, fileMustExist: true });
    return db.prepare(`SELECT run_id, stage_id, status, step, attempt, reason FROM stages WHERE ${where}`).all(...args) as never;
  } catch {
    // not created yet, or busy: the next poll sees it
    return [];
  } finally {
    db?.close();
  }
}

describe('sweeps', () => {
  it('2 settings × 2 seeds: the shared dense model is computed once; a killed worker is replaced; compare averages the seeds', { timeout: 600_000 }, async () => {
    let worker = serve(home, ['worker'], remote);
    const runner = sieve(home, ['run', recipe, '--seeds', '1,2', '--set', 'stages.ft.lr=1e-3,3e-3', '--concurrency', '1', '--heartbeat-timeout', '3', '--json'], remote);
    const running = await waitFor('a point to pass its first checkpoint', () => stageRows("stage_id = 'ft' AND status = 'running' AND step >= 25")[0], 300_000);
    worker.kill('SIGKILL');
    worker = serve(home, ['worker'], remote);
    const r = await runner;
    await stopAll(worker);
    assert.equal(r.code, 0, r.stderr);
    const out = lastJson<SweepOutput>(r.stdout);
    assert.equal(out.runs.length, 5);
    assert.ok(out.runs.every((run) => run.status === 'completed'), JSON.stringify(out.runs));
    assert.equal(out.runs[0].id, `${out.id}-shared`);

    const dense = stageRows("stage_id = 'dense' AND run_id LIKE ?", `${out.id}-%`);
    assert.deepEqual(dense.filter((s) => s.status === 'completed').map((s) => s.run_id), [`${out.id}-shared`], 'dense computed once, in the shared run');
    assert.equal(dense.filter((s) => s.status === 'reused').length, 4);
    assert.match(dense.find((s) => s.status === 'reused')!.reason!, new RegExp(`shared by every point of sweep ${out.id}: computed once, in run ${out.id}-shared`));
    const killed = stageRows("run_id = ? AND stage_id = 'ft'", running.run_id)[0];
    assert.equal(killed.status, 'completed');
    assert.ok(killed.attempt >= 2, `the killed point's stage ran again on the new worker (attempt ${killed.attempt})`);

    const compare = await sieve(home, ['compare', out.id, '--json']);
    assert.equal(compare.code, 0, compare.stderr);
    const summary = JSON.parse(compare.stdout) as SweepCompareOutput;
    assert.deepEqual(summary.settings.map((s) => [s.label, s.runs.map((x) => x.seed)]), [['stages.ft.lr=0.001', [1, 2]], ['stages.ft.lr=0.003', [1, 2]]]);
    const ppl = summary.metrics.find((m) => m.stage === 'report' && m.name === 'ft/tail/ppl')!;
    assert.ok(ppl.values.every((v) => v !== null && v.n === 2 && v.sd > 0), JSON.stringify(ppl));
    assert.notEqual(ppl.values[0]!.mean, ppl.values[1]!.mean);
    const text = await sieve(home, ['compare', out.id]);
    assert.match(text.stdout, /ft\/tail\/ppl\s+\S+ ± \S+ \(2\)\s+\S+ ± \S+ \(2\)/);
  });

  it('a sweep cancelled mid-way is continued by sieve resume', { timeout: 600_000 }, async () => {
    const worker = serve(home, ['worker'], remote);
    try {
      const runner = sieve(home, ['run', recipe, '--seeds', '3,4', '--set', 'stages.ft.lr=2e-3', '--concurrency', '1', '--json'], remote);
      const running = await waitFor('a point of the second sweep to run', () => stageRows("stage_id = 'ft' AND status = 'running' AND run_id LIKE '%-p0'")[0], 300_000);
      const sweepId = running.run_id.replace(/-p0$/, '');
      const cancel = await sieve(home, ['cancel', sweepId], remote);
      assert.equal(cancel.code, 0, cancel.stderr);
      assert.match(cancel.stdout, new RegExp(`sweep ${sweepId} cancelled`));
      const stopped = await runner;
      assert.notEqual(stopped.code, 0);
      assert.equal(stageRows("run_id = ? AND stage_id = 'ft'", running.run_id)[0].status, 'cancelled');

      const resumed = await sieve(home, ['resume', sweepId, '--json'], remote);
      assert.equal(resumed.code, 0, resumed.stderr);
      const out = lastJson<SweepOutput>(resumed.stdout);
      assert.equal(out.id, `${sweepId}-r1`);
      assert.ok(out.runs.every((run) => run.status === 'completed'), JSON.stringify(out.runs));
      const dense = stageRows("stage_id = 'dense' AND run_id LIKE ?", `${out.id}-%`);
      assert.ok(dense.every((s) => s.status === 'reused'), 'the continued sweep computes no dense model again');
      const summary = JSON.parse((await sieve(home, ['compare', out.id, '--json'])).stdout) as SweepCompareOutput;
      assert.deepEqual(summary.settings.map((s) => s.runs.map((x) => x.status)), [['completed', 'completed']]);
    } finally {
      await stopAll(worker);
    }
  });

  it('refuses a grid that changes nothing, a bad --set and --seed with --seeds', async () => {
    const same = await sieve(home, ['run', recipe, '--set', 'stages.ft.steps=150']);
    assert.equal(same.code, 2);
    assert.match(same.stderr, /the grid has 1 point/);
    const unknown = await sieve(home, ['run', recipe, '--set', 'stages.nope.lr=1,2']);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /--set stages\.nope\.lr: the recipe has no stage "nope"/);
    const both = await sieve(home, ['run', recipe, '--seed', '1', '--seeds', '1,2']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /--seed runs one seed; a sweep takes --seeds/);
  });
});
