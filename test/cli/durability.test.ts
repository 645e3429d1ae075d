// The durability promises, each with real processes: a worker killed with SIGKILL mid-pretrain
// (another worker resumes from the last heartbeated checkpoint and the final model is bit-identical
// to an uninterrupted run's), the dev server killed mid-run (restarted on its store, the run
// completes), `sieve resume` of a failed and of a cancelled run, and two runs at once on one
// database.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import type { ShowOutput, StatusOutput } from '../../schemas/cli';
import type { ChildProcess } from 'node:child_process';
import { DevServer } from '../../cli/temporal/dev-server';
import { lastJson, serve, sieve, startServer, stopAll, tempHome, tinyRecipe, waitFor, writeRecipe } from './helpers';

const home = tempHome('durability');
let address: string;
let server: ChildProcess;

before(async () => {
  // One `sieve server` for the file, as an operator runs it: runs and workers come and go around it.
  const started = await startServer(home);
  server = started.child;
  address = started.remote.TEMPORAL_ADDRESS;
  const ui = await fetch(`http://127.0.0.1:${started.uiPort}/`);
  assert.equal(ui.status, 200, 'the Web UI answers');
});
after(async () => {
  await stopAll(server);
  assert.equal(new DevServer(home).record(), null, 'sieve server stops its dev server on SIGTERM');
});

const show = async (id: string) => JSON.parse((await sieve(home, ['show', id, '--json'])).stdout) as ShowOutput;
const model = (run: ShowOutput, stage = 'dense') => run.stages.find((s) => s.id === stage)!.artifacts.find((a) => a.role === 'model')!.sha256;
const denseStep = async (id: string) => {
  const r = await sieve(home, ['status', id, '--json'], { TEMPORAL_ADDRESS: address });
  return r.code === 0 ? (JSON.parse(r.stdout) as StatusOutput).stages[0]?.step ?? 0 : 0;
};

test('a worker killed with SIGKILL mid-pretrain: another resumes it and the result is bit-identical', { timeout: 400_000 }, async () => {
  const recipe = writeRecipe(home, 'kill.yaml', tinyRecipe({ name: 'kill', steps: 500, checkpointEvery: 50, slow: true }));
  const remote = { TEMPORAL_ADDRESS: address };

  const reference = sieve(home, ['run', recipe, '--json'], remote);
  // With TEMPORAL_ADDRESS, `sieve run` only submits and follows: the workers are separate processes.
  const referenceWorker = serve(home, ['worker'], remote);
  const ref = await reference;
  referenceWorker.kill('SIGTERM');
  assert.equal(ref.code, 0, ref.stderr);
  const uninterrupted = await show(lastJson<{ id: string }>(ref.stdout).id);

  const runner = sieve(home, ['run', recipe, '--no-cache', '--json', '--heartbeat-timeout', '3'], remote);
  const doomed = serve(home, ['worker'], remote);
  const runId = await waitFor('the second run to be recorded', async () => {
    const h = JSON.parse((await sieve(home, ['history', '--json', '--name', 'kill', '--status', 'running'])).stdout);
    return h.runs[0]?.id as string | undefined;
  });
  await waitFor('pretrain to pass its second checkpoint', async () => (await denseStep(runId)) >= 110);
  doomed.kill('SIGKILL');
  const rescuer = serve(home, ['worker'], remote);
  const r = await runner;
  rescuer.kill('SIGTERM');
  assert.equal(r.code, 0, r.stderr);

  const resumed = await show(runId);
  const dense = resumed.stages[0];
  assert.equal(dense.status, 'completed');
  assert.ok(dense.attempt >= 2, `the stage ran again after the kill (attempt ${dense.attempt})`);
  assert.equal(model(resumed), model(uninterrupted), 'final checkpoint bit-identical to the uninterrupted run');
  assert.equal(resumed.stages[1].metrics['dense/tail/ppl'], uninterrupted.stages[1].metrics['dense/tail/ppl']);
});

test('the dev server killed mid-run is restarted on its store and the run completes', { timeout: 400_000 }, async () => {
  const ownHome = tempHome('server-kill');
  const ownServer = new DevServer(ownHome);
  try {
    const recipe = writeRecipe(ownHome, 'srv.yaml', tinyRecipe({ name: 'srv', steps: 500, checkpointEvery: 50, slow: true }));
    const runner = sieve(ownHome, ['run', recipe, '--json', '--heartbeat-timeout', '5']);
    const pid = await waitFor('the embedded server', () => ownServer.record()?.pid);
    await waitFor('pretrain to be underway', async () => {
      const r = await sieve(ownHome, ['history', '--json']);
      const id = r.code === 0 ? JSON.parse(r.stdout).runs[0]?.id : undefined;
      return id && (JSON.parse((await sieve(ownHome, ['status', id, '--json'])).stdout) as StatusOutput).stages[0].step >= 60;
    });
    process.kill(pid, 'SIGKILL');
    const r = await runner;
    assert.equal(r.code, 0, r.stderr);
    assert.notEqual(ownServer.record()?.pid ?? null, pid);
    const run = await (async () => JSON.parse((await sieve(ownHome, ['show', lastJson<{ id: string }>(r.stdout).id, '--json'])).stdout) as ShowOutput)();
    assert.deepEqual(run.stages.map((s) => s.status), ['completed', 'completed']);
  } finally {
    await ownServer.stop();
  }
});

test('resume of a failed run reuses the finished stages and runs the rest', { timeout: 400_000 }, async () => {
  const heldOut = path.join(home, 'held-out.txt');
  fs.writeFileSync(heldOut, 'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. '.repeat(20));
  const recipe = writeRecipe(home, 'fail.yaml', tinyRecipe({ name: 'fail', steps: 300, evalFile: heldOut, slow: true }));
  const remote = { TEMPORAL_ADDRESS: address };
  const worker = serve(home, ['worker'], remote);
  try {
    const runner = sieve(home, ['run', recipe, '--json'], remote);
    const runId = await waitFor('the run', async () => JSON.parse((await sieve(home, ['history', '--json', '--name', 'fail'])).stdout).runs[0]?.id as string | undefined);
    await waitFor('pretrain to start', async () => (await denseStep(runId)) >= 1);
    fs.renameSync(heldOut, `${heldOut}.away`); // the evaluation set vanishes while pretrain runs
    const failed = await runner;
    assert.equal(failed.code, 1);
    const before = await show(runId);
    assert.equal(before.status, 'failed');
    assert.deepEqual(before.stages.map((s) => s.status), ['completed', 'failed']);
    assert.match(before.stages[1].error ?? '', /held-out\.txt/);

    fs.renameSync(`${heldOut}.away`, heldOut);
    const r = await sieve(home, ['resume', runId, '--json'], remote);
    assert.equal(r.code, 0, r.stderr);
    const after = await show(lastJson<{ id: string }>(r.stdout).id);
    assert.equal(after.parentRunId, runId);
    assert.deepEqual(after.stages.map((s) => s.status), ['reused', 'completed']);
    assert.equal(model(after), model(before));
  } finally {
    worker.kill('SIGTERM');
  }
});

test('resume of a cancelled run continues the partial stage from its last checkpoint', { timeout: 400_000 }, async () => {
  const recipe = writeRecipe(home, 'cancel.yaml', tinyRecipe({ name: 'cancel', seed: 5, steps: 500, checkpointEvery: 50, slow: true }));
  const remote = { TEMPORAL_ADDRESS: address };
  const worker = serve(home, ['worker'], remote);
  try {
    const runner = sieve(home, ['run', recipe, '--json', '--no-cache'], remote);
    const runId = await waitFor('the run', async () => JSON.parse((await sieve(home, ['history', '--json', '--name', 'cancel'])).stdout).runs[0]?.id as string | undefined);
    await waitFor('pretrain past step 120', async () => (await denseStep(runId)) >= 120);
    const c = await sieve(home, ['cancel', runId], remote);
    assert.equal(c.code, 0, c.stderr);
    assert.notEqual((await runner).code, 0);
    const cancelled = await show(runId);
    assert.equal(cancelled.status, 'cancelled');
    const saved = cancelled.stages[0].artifacts.filter((a) => a.role === 'checkpoint').map((a) => a.step!);
    const last = Math.max(...saved);
    assert.ok(last >= 120, `the cancelled stage checkpointed where it stopped (step ${last})`);

    const r = await sieve(home, ['resume', runId, '--json'], remote);
    assert.equal(r.code, 0, r.stderr);
    const resumed = await show(lastJson<{ id: string }>(r.stdout).id);
    assert.deepEqual(resumed.stages.map((s) => s.status), ['completed', 'completed']);
    const events = resumed.stages[0];
    assert.ok(events.artifacts.every((a) => a.role !== 'checkpoint' || a.step! > last), 'no checkpoint before the resume point was recomputed');
    const fresh = await sieve(home, ['run', recipe, '--json', '--no-cache'], remote); // computed without interruption
    const reference = await show(lastJson<{ id: string }>(fresh.stdout).id);
    assert.equal(model(resumed), model(reference), 'resumed across runs: same bits as the uninterrupted stage');
  } finally {
    worker.kill('SIGTERM');
  }
});

test('two runs at once on one database both complete', { timeout: 400_000 }, async () => {
  const remote = { TEMPORAL_ADDRESS: address };
  const worker = serve(home, ['worker'], remote);
  try {
    const a = writeRecipe(home, 'a.yaml', tinyRecipe({ name: 'twin-a', seed: 11 }));
    const b = writeRecipe(home, 'b.yaml', tinyRecipe({ name: 'twin-b', seed: 12 }));
    const [ra, rb] = await Promise.all([sieve(home, ['run', a, '--json'], remote), sieve(home, ['run', b, '--json'], remote)]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    const [sa, sb] = await Promise.all([show(lastJson<{ id: string }>(ra.stdout).id), show(lastJson<{ id: string }>(rb.stdout).id)]);
    assert.equal(sa.status, 'completed');
    assert.equal(sb.status, 'completed');
    assert.notEqual(model(sa), model(sb), 'different seeds, different models');
  } finally {
    worker.kill('SIGTERM');
  }
});
