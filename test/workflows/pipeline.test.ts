// The pipeline workflow against a real Temporal dev server with scripted activities: DAG order and
// parallel branches, failure isolation, cache decisions, cancellation reaching a running stage,
// the checkpoint signal, and replay of the recorded histories (determinism).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { createControlActivities, type createComputeActivities } from '../../activities';
import { createArtifactStore } from '../../activities/store/artifacts';
import { openDb } from '../../activities/store/db';
import { reconcileRuns } from '../../cli/reconcile';
import { getRun } from '../../cli/read-models';
import { tempHome } from '../cli/helpers';
import type { ComputeResult, StageOutput, StageTask } from '../../schemas/pipeline';
import { environment } from '../../activities/store/provenance';
import { Recipe } from '../../schemas/recipe';
import { checkpointSaved, progressQuery, TASK_QUEUES, type PipelineInput } from '../../workflows/contract';
import { pipeline } from '../../workflows/pipeline';
import { workflowTestEnvironment } from './environment';

type Control = ReturnType<typeof createControlActivities>;
type Compute = ReturnType<typeof createComputeActivities>;

const temporalEnv = workflowTestEnvironment();
const HISTORIES = path.join(__dirname, '..', 'histories');

const recipe = Recipe.parse({
  name: 'wf-test',
  model: { layers: 1, dim: 16, heads: 2, context: 8, tokenizer: 'bytes' },
  data: { corpus: 'moby-dick', train: { items: [3, 10] }, eval: { tail: { corpus: 'moby-dick', items: [130, 138] } } },
  stages: [
    { id: 'a', kind: 'pretrain', steps: 10, batch: 2, lr: 0.01 },
    { id: 'b', kind: 'pretrain', steps: 10, batch: 2, lr: 0.02 },
    { id: 'a2', kind: 'pretrain', from: 'a', steps: 5, batch: 2, lr: 0.01 },
    { id: 'report', kind: 'evaluate', from: ['a2', 'b'] },
  ],
});

const output = (id: string): StageOutput => ({
  artifacts: [{ sha256: id.padEnd(64, '0').replace(/[^0-9a-f]/g, 'a'), bytes: 1, kind: 'checkpoint', role: 'model' }],
  metrics: { 'train/loss': 1 },
  computeMs: 1,
  events: [],
});
const computed = (id: string): ComputeResult => ({ output: output(id), attempt: 1, environment: environment() });

interface Journal {
  calls: string[];
  ends: Record<string, string>;
  runStatus: string | null;
  checkpoints: number[];
}

function control(journal: Journal, decide: (stageId: string) => 'run' | 'cached' = () => 'run'): Control {
  return {
    beginRun: async () => {
      journal.calls.push('begin');
    },
    prepareStage: async ({ stageId }) =>
      decide(stageId) === 'run'
        ? { decision: 'run', reason: 'test', cacheKey: `k-${stageId}`, output: null }
        : { decision: 'cached', reason: 'test hit', cacheKey: `k-${stageId}`, output: output(stageId) },
    recordCheckpoint: async ({ checkpoint }) => {
      journal.checkpoints.push(checkpoint.step);
    },
    recordStageResult: async ({ stageId }) => {
      journal.ends[stageId] = 'completed';
    },
    recordStageEnd: async ({ stageId, status }) => {
      journal.ends[stageId] = status;
    },
    finishRun: async ({ status }) => {
      journal.runStatus = status;
    },
    finishedOutputs: async () => ({}),
  } as Control;
}

async function runWith(name: string, ctl: Control, compute: Compute, opts: { cancelAfterMs?: number; save?: boolean } = {}) {
  const taskQueue = `test-${name}-${process.hrtime.bigint()}`;
  const workflowId = `wf-${name}-${process.hrtime.bigint()}`;
  const { env, bundle } = temporalEnv;
  const cpu = await Worker.create({ connection: env.nativeConnection, taskQueue: TASK_QUEUES.cpu, activities: compute });
  const sieve = await Worker.create({ connection: env.nativeConnection, taskQueue: TASK_QUEUES.control, workflowBundle: bundle, activities: ctl });
  const input: PipelineInput = { runId: workflowId, recipe, options: { noCache: false, heartbeatTimeoutSec: 5, maxAttempts: 2 }, resume: null };
  const work = (async () => {
    const handle = await env.client.workflow.start(pipeline, { taskQueue: TASK_QUEUES.control, workflowId, args: [input] });
    if (opts.cancelAfterMs !== undefined) setTimeout(() => void handle.cancel(), opts.cancelAfterMs);
    const result = await handle.result().then(
      (r) => ({ ok: true as const, r }),
      (e: Error) => ({ ok: false as const, e }),
    );
    // Fixtures are recorded only on request, so replay checks today's code against yesterday's
    // histories. SIEVE_RECORD_HISTORIES=<tag> names the workflow version they come from (the
    // newest patch id): old fixtures stay, and every version's histories must keep replaying.
    const tag = process.env.SIEVE_RECORD_HISTORIES;
    if (opts.save && tag) {
      fs.mkdirSync(HISTORIES, { recursive: true });
      // Binary protobuf, as the SDK's own replay fixtures: immune to JSON-mapping differences.
      fs.writeFileSync(path.join(HISTORIES, `pipeline-${name}.${tag}.bin`), temporal.api.history.v1.History.encode(await handle.fetchHistory()).finish());
    }
    return result;
  })();
  // The sieve queue here is private to this test only by workflow id; run both workers until done.
  return sieve.runUntil(cpu.runUntil(work));
}

const fresh = (): Journal => ({ calls: [], ends: {}, runStatus: null, checkpoints: [] });

test('stages run in DAG order, independent branches overlap, results flow to consumers', { timeout: 60_000 }, async () => {
  const journal = fresh();
  const running = new Set<string>();
  let overlapped = false;
  const seenInputs: Record<string, string[]> = {};
  const stage = async (task: StageTask) => {
    running.add(task.stageId);
    if (running.size > 1) overlapped = true;
    seenInputs[task.stageId] = Object.keys(task.inputs);
    await new Promise((r) => setTimeout(r, 300));
    running.delete(task.stageId);
    journal.calls.push(task.stageId);
    return computed(task.stageId);
  };
  const res = await runWith('dag', control(journal), { pretrain: stage, evaluate: stage } as Compute, { save: true });
  assert.ok(res.ok);
  assert.equal(res.r.status, 'completed');
  assert.ok(journal.calls.indexOf('a') < journal.calls.indexOf('a2'));
  assert.ok(journal.calls.indexOf('a2') < journal.calls.indexOf('report'));
  assert.ok(journal.calls.indexOf('b') < journal.calls.indexOf('report'));
  assert.deepEqual(seenInputs.report, ['a2', 'b']);
  assert.ok(overlapped, 'a and b have no dependency and must run at the same time');
  assert.equal(journal.runStatus, 'completed');
});

test('a failed stage skips its dependants while other branches finish', { timeout: 60_000 }, async () => {
  const journal = fresh();
  const stage = async (task: StageTask) => {
    if (task.stageId === 'a') throw ApplicationFailure.nonRetryable('diverged', 'BadInput');
    return computed(task.stageId);
  };
  const res = await runWith('fail', control(journal), { pretrain: stage, evaluate: stage } as Compute);
  assert.ok(res.ok);
  assert.equal(res.r.status, 'failed');
  assert.deepEqual(journal.ends, { a: 'failed', b: 'completed', a2: 'skipped', report: 'skipped' });
  assert.equal(res.r.stages.find((s) => s.id === 'a')!.error, 'diverged');
  assert.equal(journal.runStatus, 'failed');
});

test('cached stages are not computed; their outputs feed consumers', { timeout: 60_000 }, async () => {
  const journal = fresh();
  const ran: string[] = [];
  const stage = async (task: StageTask) => {
    ran.push(task.stageId);
    return computed(task.stageId);
  };
  const res = await runWith('cache', control(journal, (id) => (id === 'a' || id === 'b' ? 'cached' : 'run')), { pretrain: stage, evaluate: stage } as Compute);
  assert.ok(res.ok);
  assert.deepEqual(ran.sort(), ['a2', 'report']);
  assert.equal(res.r.stages.find((s) => s.id === 'a')!.status, 'cached');
});

test('cancelling the run reaches the running activity; every stage records an end', { timeout: 60_000 }, async () => {
  const journal = fresh();
  let sawCancel = false;
  const slow = async (task: StageTask) => {
    const ctx = Context.current();
    for (let step = 1; ; step++) {
      ctx.heartbeat({ step, steps: 1000, loss: null, tokensPerSec: null, etaSec: null, checkpoint: null });
      if (step === 2) await ctx.client.workflow.getHandle(ctx.info.workflowExecution!.workflowId).signal(checkpointSaved, { stageId: task.stageId, step: 2, sha256: 'c'.repeat(64), bytes: 3, history: null, earlier: [] });
      try {
        await ctx.sleep(100);
      } catch (err) {
        sawCancel = true;
        throw err;
      }
    }
  };
  const res = await runWith('cancel', control(journal), { pretrain: slow, evaluate: slow } as unknown as Compute, { cancelAfterMs: 1500, save: true });
  assert.equal(res.ok, false);
  assert.ok(sawCancel, 'the activity must observe the cancellation');
  assert.equal(journal.runStatus, 'cancelled');
  assert.deepEqual(journal.ends, { a: 'cancelled', b: 'cancelled', a2: 'cancelled', report: 'cancelled' });
  assert.ok(journal.checkpoints.includes(2), 'the checkpoint signal was recorded');
});

test('every checkpoint a stage reports is recorded once, an older one too (a stage that fell back writes older steps again)', { timeout: 60_000 }, async () => {
  const journal = fresh();
  const ref = (step: number, c: string) => ({ stageId: 'a', step, sha256: c.repeat(64), bytes: 3, history: null, earlier: [] });
  let handed: StageTask['resumeFrom'] = null;
  const stage = async (task: StageTask) => {
    if (task.stageId === 'a') {
      const handle = Context.current().client.workflow.getHandle(Context.current().info.workflowExecution!.workflowId);
      for (const c of [ref(8, 'a'), ref(4, 'b'), ref(4, 'b'), ref(8, 'a')]) await handle.signal(checkpointSaved, c);
    }
    if (task.stageId === 'a2') handed = (await Context.current().client.workflow.getHandle(Context.current().info.workflowExecution!.workflowId).query(progressQuery)).find((s) => s.id === 'a')!.checkpoint;
    return computed(task.stageId);
  };
  const res = await runWith('older-checkpoint', control(journal), { pretrain: stage, evaluate: stage } as Compute, { save: true });
  assert.ok(res.ok);
  assert.deepEqual(journal.checkpoints, [8, 4], 'the older one recorded, no repeat recorded twice');
  assert.deepEqual(handed, { ...ref(8, 'a'), earlier: [{ step: 4, sha256: 'b'.repeat(64), bytes: 3 }] }, 'the newest leads, the older follows as its fallback');
});

test('a stage failure the workflow could not record (a full disk) is recorded from its history by reconciliation', { timeout: 60_000 }, async () => {
  const home = tempHome('wf-unrecorded');
  const real = createControlActivities({ home });
  const ctl: Control = {
    ...real,
    prepareStage: async ({ stageId }) => ({ decision: 'run', reason: 'test', cacheKey: `k-${stageId}`, output: null }),
    recordStageEnd: async () => {
      throw ApplicationFailure.nonRetryable('the disk is full writing sieve.db', 'ResourceExhausted');
    },
  };
  const stage = async (task: StageTask) => {
    // b is still running when the workflow fails on recording a's end (a's retry waits a second).
    if (task.stageId === 'b') {
      await new Promise((r) => setTimeout(r, 3000));
      return computed(task.stageId);
    }
    if (Context.current().info.attempt === 1) throw new Error('a flaky first attempt');
    throw ApplicationFailure.nonRetryable('the disk is full writing a.ckpt (ENOSPC)', 'ResourceExhausted');
  };
  const res = await runWith('unrecorded', ctl, { pretrain: stage, evaluate: stage } as unknown as Compute);
  assert.equal(res.ok, false, 'the workflow fails on the write it could not make');

  const { db, close } = openDb({ home });
  try {
    const store = createArtifactStore(home);
    const [reconciled] = await reconcileRuns(db, store, temporalEnv.env.client);
    assert.equal(reconciled.status, 'failed');
    const stages = Object.fromEntries(getRun(db, store, reconciled.id)!.stages.map((s) => [s.id, s]));
    assert.deepEqual([stages.a.status, stages.a.error, stages.a.attempt], ['failed', 'the disk is full writing a.ckpt (ENOSPC)', 2], 'the stage\'s own error and attempt, from the history');
    for (const id of ['b', 'a2']) assert.match(stages[id].error ?? '', /^the run ended before this stage did: its workflow failed: the disk is full writing sieve\.db$/, `${id}, which never failed itself, says why it has no end of its own`);
  } finally {
    close();
  }
});

test('recorded histories replay deterministically against the current workflow code', { timeout: 60_000 }, async () => {
  const files = fs.readdirSync(HISTORIES).filter((f) => f.endsWith('.bin'));
  assert.ok(files.length >= 2, 'history fixtures are present');
  for (const file of files) {
    const history = temporal.api.history.v1.History.decode(fs.readFileSync(path.join(HISTORIES, file)));
    await Worker.runReplayHistory({ workflowBundle: temporalEnv.bundle }, history, file);
  }
});
