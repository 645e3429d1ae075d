// A `sparse-train` stage killed mid-way with SIGKILL, through the real CLI: another worker takes the
// retry, continues from the last checkpoint (masks, AST's decay ramp and SLoRB branches, the teacher,
// Adam's moments, the sampler) and the final model is bit-identical to an uninterrupted run's.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ChildProcess } from 'node:child_process';
import type { ShowOutput, StatusOutput } from '../../schemas/cli';
import { lastJson, serve, sieve, startServer, stopAll, tempHome, waitFor, writeRecipe } from './helpers';

const home = tempHome('sparse-kill');
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
  'sparse.yaml',
  `name: sparse-kill
seed: 3
model: { family: gpt2, layers: 2, dim: 64, heads: 4, context: 64, tokenizer: bytes }
data:
  corpus: moby-dick
  train: { items: [3, 40] }
  eval:
    tail: { corpus: moby-dick, items: [130, 138] }
stages:
  - { id: dense, kind: pretrain, steps: 30, batch: 16, lr: 3.0e-3, checkpointEvery: 30 }
  - { id: ast, kind: sparse-train, method: ast, from: dense, slorbK: 16, rampSteps: 100, steps: 400, batch: 16, lr: 1.0e-3, checkpointEvery: 40, maskEvery: 5 }
  - { id: report, kind: evaluate, from: ast }
`,
);

const show = async (id: string) => JSON.parse((await sieve(home, ['show', id, '--json'])).stdout) as ShowOutput;
const stage = (run: ShowOutput, id: string) => run.stages.find((s) => s.id === id)!;
const model = (run: ShowOutput) => stage(run, 'ast').artifacts.find((a) => a.role === 'model')!.sha256;

test('a worker killed with SIGKILL mid sparse-train: another resumes it and the result is bit-identical', { timeout: 600_000 }, async () => {
  const referenceWorker = serve(home, ['worker'], remote);
  const ref = await sieve(home, ['run', recipe, '--json'], remote);
  await stopAll(referenceWorker);
  assert.equal(ref.code, 0, ref.stderr);
  const uninterrupted = await show(lastJson<{ id: string }>(ref.stdout).id);

  const runner = sieve(home, ['run', recipe, '--no-cache', '--json', '--heartbeat-timeout', '3'], remote);
  const doomed = serve(home, ['worker'], remote);
  const runId = await waitFor('the second run to be recorded', async () => {
    const h = JSON.parse((await sieve(home, ['history', '--json', '--status', 'running'])).stdout);
    return h.runs[0]?.id as string | undefined;
  });
  await waitFor('sparse-train to pass its third checkpoint', async () => {
    const r = await sieve(home, ['status', runId, '--json'], remote);
    const ast = r.code === 0 ? (JSON.parse(r.stdout) as StatusOutput).stages.find((s) => s.id === 'ast') : undefined;
    return (ast?.step ?? 0) >= 130;
  });
  doomed.kill('SIGKILL');
  const rescuer = serve(home, ['worker'], remote);
  const r = await runner;
  await stopAll(rescuer);
  assert.equal(r.code, 0, r.stderr);

  const resumed = await show(runId);
  const ast = stage(resumed, 'ast');
  assert.equal(ast.status, 'completed');
  assert.ok(ast.attempt >= 2, `the stage ran again after the kill (attempt ${ast.attempt})`);
  assert.equal(model(resumed), model(uninterrupted), 'final model bit-identical to the uninterrupted run');
  for (const name of ['sparse/two_four', 'sparse/flip_rate', 'sparse/lambda', 'train/loss']) {
    assert.equal(ast.metrics[name], stage(uninterrupted, 'ast').metrics[name], name);
  }
  assert.equal(stage(resumed, 'report').metrics['ast/tail/ppl'], stage(uninterrupted, 'report').metrics['ast/tail/ppl']);
});
