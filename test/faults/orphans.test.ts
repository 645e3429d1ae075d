// Orphaned runs, with real processes: a `sieve run` killed with SIGKILL mid-stage leaves its
// workflow open in Temporal with no worker, its lease and its embedded server. `status` must say
// the run is orphaned and what to do, and clean up; `resume` must refuse with the way out;
// `cancel` must end the run with no worker running (serving the control queue itself, and
// acknowledging for the dead stage worker), record run and stages `cancelled` with the last
// checkpoint the stage reported; and `resume` must then continue that checkpoint to the bits an
// uninterrupted run produces. A second case kills a stage worker whose death sieve cannot see
// (one of another host): `cancel` says it waits for the heartbeat timeout, and the run still ends
// cancelled. Earlier runs and their files stay intact throughout.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { after, test } from 'node:test';
import fs from 'node:fs';
import type { HistoryOutput } from '../../schemas/cli';
import type { RunStatusOutput } from '../../cli/commands/status';
import { DevServer } from '../../cli/temporal/dev-server';
import { lastJson, serve, sieve, start, tempHome, tinyRecipe, waitFor, writeRecipe } from '../cli/helpers';
import { FOREIGN_IDENTITY } from './foreign-worker';
import { assertIntact, checkpointSteps, exited, leaseOf, reportedCheckpoints, show } from './processes';

const home = tempHome('orphans');
after(async () => {
  await new DevServer(home).stop();
});

const model = (run: { stages: { id: string; artifacts: { role: string; sha256: string }[] }[] }) =>
  run.stages.find((s) => s.id === 'dense')!.artifacts.find((a) => a.role === 'model')!.sha256;

/** A recipe whose pretrain lasts a few seconds, checkpointing every 30 steps. */
const slowRecipe = (name: string) => writeRecipe(home, `${name}.yaml`, tinyRecipe({ name, steps: 300, checkpointEvery: 30, slow: true }));

async function runningId(name: string, env: Record<string, string> = {}): Promise<string> {
  return waitFor(`run ${name} to be recorded`, async () => {
    const r = await sieve(home, ['history', '--json', '--name', name, '--status', 'running'], env);
    return r.code === 0 ? (JSON.parse(r.stdout) as HistoryOutput).runs[0]?.id : undefined;
  });
}

/** Waits until the dense stage has recorded two checkpoints, so a kill lands mid-stage. */
async function pastTwoCheckpoints(runId: string, env: Record<string, string> = {}) {
  await waitFor('two checkpoints of dense', async () => checkpointSteps(await show(home, runId, env), 'dense').length >= 2);
}

test('a run killed mid-stage: status flags and cleans up, resume refuses, cancel ends it without a worker, resume continues it', { timeout: 180_000 }, async () => {
  const recipe = slowRecipe('killed');
  const first = await sieve(home, ['run', recipe, '--json']);
  assert.equal(first.code, 0, first.stderr);
  const earlier = await show(home, lastJson<{ id: string }>(first.stdout).id);

  // A long heartbeat timeout: without the acknowledgement `cancel` gives for the dead worker, the
  // cancellation would wait 60 s for Temporal to time the stage out.
  const runner = start(home, ['run', recipe, '--no-cache', '--json', '--heartbeat-timeout', '60']);
  const runId = await runningId('killed');
  const lease = leaseOf(home, runner.pid!);
  assert.ok(lease, 'the run holds a lease on the embedded server');
  await pastTwoCheckpoints(runId);
  runner.kill('SIGKILL');
  await exited(runner);

  const status = await sieve(home, ['status', '--json']);
  assert.equal(status.code, 0, status.stderr);
  const listed = (JSON.parse(status.stdout) as { runs: RunStatusOutput[] }).runs.find((r) => r.id === runId)!;
  assert.equal(listed.status, 'running');
  assert.equal(listed.orphaned?.reason, 'unserved');
  assert.equal(listed.orphaned?.message, `no worker serves it (queue sieve); \`sieve worker\` continues it, \`sieve cancel ${runId}\` ends it.`);
  // Cleaned up by status, or by the server's watchdog if it came first: either says so.
  assert.equal(fs.existsSync(lease), false, 'the dead run’s lease is gone');
  const said = status.stderr + fs.readFileSync(new DevServer(home).logFile, 'utf8');
  assert.match(said, new RegExp(`sieve: removed a stale lease ${lease} left by pid ${runner.pid}, which is gone\\.`));
  assert.equal(new DevServer(home).record(), null, 'the server nobody uses any more is stopped');

  const refused = await sieve(home, ['resume', runId]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, new RegExp(`^sieve: run ${runId} is still open in Temporal but no worker serves it; \`sieve cancel ${runId}\` ends it`, 'm'));

  const text = await sieve(home, ['status', runId]);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`^${runId}: running — orphaned: no worker serves it`, 'm'));

  const cancel = await sieve(home, ['cancel', runId]);
  assert.equal(cancel.code, 0, cancel.stderr);
  assert.match(cancel.stderr, new RegExp(`no worker serves ${runId}, so sieve cancel serves its control queue \\(sieve\\) until the cancellation is recorded; no stage resumes\\.`));
  assert.match(cancel.stderr, new RegExp(`stage dense's worker \\(sieve:${runner.pid}:\\d+@[^)]+\\) is gone; acknowledged the cancellation for it\\.`));

  const cancelled = await show(home, runId);
  assert.equal(cancelled.status, 'cancelled');
  assert.deepEqual(cancelled.stages.map((s) => s.status), ['cancelled', 'cancelled']);
  const holder = await new DevServer(home).lease();
  let reported: number[];
  try {
    reported = await reportedCheckpoints(holder.address, runId, 'dense');
  } finally {
    await holder.release();
  }
  const last = Math.max(...reported);
  assert.equal(Math.max(...checkpointSteps(cancelled, 'dense')), last, 'the stage keeps the last checkpoint it reported before the kill');
  assert.equal(cancel.stdout.trim(), `run ${runId} cancelled; stage dense keeps its checkpoint of step ${last}; \`sieve resume ${runId}\` continues it.`);

  const resumed = await sieve(home, ['resume', runId, '--no-cache']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`resuming ${runId} as ${runId}-r1: reuse nothing; continue dense from step ${last}\\.`));
  const after = await show(home, `${runId}-r1`);
  assert.deepEqual(after.stages.map((s) => s.status), ['completed', 'completed']);
  assert.ok(checkpointSteps(after, 'dense').every((step) => step >= last), 'nothing before the resume point was recomputed');
  assert.equal(model(after), model(earlier), 'continued from the checkpoint: the bits of the uninterrupted run');
  await assertIntact(home, earlier);
});

test('cancel with a dead stage worker it cannot check waits for the heartbeat timeout and still ends the run cancelled', { timeout: 180_000 }, async () => {
  const holder = await new DevServer(home).lease();
  const remote = { TEMPORAL_ADDRESS: holder.address };
  const control = serve(home, ['worker', '--queue', 'sieve'], remote);
  try {
    const earlier = JSON.parse((await sieve(home, ['history', '--json'])).stdout) as HistoryOutput;
    const foreign = spawn(process.execPath, ['--require', require.resolve('tsx/cjs'), path.join(__dirname, 'foreign-worker.ts'), holder.address, home], { stdio: ['ignore', 'pipe', 'inherit'] });
    let polling = '';
    foreign.stdout!.on('data', (d) => (polling += d));
    await waitFor('the foreign worker', () => polling.includes('polling'));
    // 8 s: long enough for the cancellation to reach the stage before Temporal times it out.
    const runner = start(home, ['run', slowRecipe('foreign'), '--no-cache', '--json', '--heartbeat-timeout', '8'], remote);
    const runId = await runningId('foreign', remote);
    await pastTwoCheckpoints(runId, remote);
    foreign.kill('SIGKILL');
    await exited(foreign);

    const cancel = await sieve(home, ['cancel', runId], remote);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stderr, new RegExp(`^cancellation requested for ${runId}; waiting for its stages to checkpoint and stop\\.$`, 'm'));
    assert.match(cancel.stderr, new RegExp(`^waiting up to \\d+ s for stage dense's worker \\(${FOREIGN_IDENTITY}\\) to acknowledge the cancellation; if it is gone, Temporal ends the attempt at its heartbeat timeout \\(8 s\\)\\.$`, 'm'));
    assert.notEqual(await exited(runner), 0, 'the followed run ends cancelled');

    const cancelled = await show(home, runId);
    assert.equal(cancelled.status, 'cancelled');
    assert.deepEqual(cancelled.stages.map((s) => [s.status, s.error]), [['cancelled', null], ['cancelled', null]]);
    const last = Math.max(...(await reportedCheckpoints(holder.address, runId, 'dense')));
    assert.equal(Math.max(...checkpointSteps(cancelled, 'dense')), last, 'the stage keeps the last checkpoint it reported');
    assert.equal(cancel.stdout.trim(), `run ${runId} cancelled; stage dense keeps its checkpoint of step ${last}; \`sieve resume ${runId}\` continues it.`);
    const now = JSON.parse((await sieve(home, ['history', '--json'])).stdout) as HistoryOutput;
    for (const run of earlier.runs) assert.deepEqual(now.runs.find((r) => r.id === run.id), run, `run ${run.id} is untouched`);
  } finally {
    control.kill('SIGTERM');
    await exited(control);
    await holder.release();
  }
});
