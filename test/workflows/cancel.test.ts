// Cancelling a run mid-stage, with the real control and compute activities (SQLite, artifact
// store, engine) on a real Temporal dev server: the workflow waits until the stage has stored and
// reported its last checkpoint (WAIT_CANCELLATION_COMPLETED), so the checkpoint the run records
// is the last one the stage wrote, whatever step the cancel lands on.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { Worker } from '@temporalio/worker';
import { and, eq } from 'drizzle-orm';

import { createComputeActivities, createControlActivities } from '../../activities';
import { openDb } from '../../activities/store/db';
import { fetchProgress } from '../../cli/temporal/progress';
import { readCheckpointInfo } from '../../kernels/checkpoint';
import { Recipe } from '../../schemas/recipe';
import { runs, stageArtifacts, stages } from '../../schemas/tables';
import { TASK_QUEUES, type PipelineInput } from '../../workflows/contract';
import { pipeline } from '../../workflows/pipeline';
import { workflowTestEnvironment } from './environment';

const temporal = workflowTestEnvironment();
const home = mkdtempSync(path.join(os.tmpdir(), 'sieve-cancel-'));
after(() => rmSync(home, { recursive: true, force: true }));

const recipe = Recipe.parse({
  name: 'cancel-test',
  model: { layers: 1, dim: 16, heads: 2, context: 16, tokenizer: 'bytes' },
  data: { corpus: 'moby-dick', train: { items: [3, 10] }, eval: { tail: { corpus: 'moby-dick', items: [130, 131] } } },
  stages: [
    // Far more steps than the test waits for; checkpoints often enough that several land first.
    { id: 'dense', kind: 'pretrain', steps: 1_000_000, batch: 2, lr: 0.01, checkpointEvery: 25 },
    { id: 'report', kind: 'evaluate', from: 'dense' },
  ],
});

/** Every checkpoint the stage wrote into the artifact store, recorded or not: its training step. */
async function checkpointStepsInStore(): Promise<number[]> {
  const root = path.join(home, 'artifacts');
  const files = readdirSync(root, { recursive: true, withFileTypes: true }).filter((f) => f.isFile() && /^[0-9a-f]{64}$/.test(f.name));
  const steps: number[] = [];
  for (const f of files) {
    const info = await readCheckpointInfo(path.join(f.parentPath, f.name)).catch(() => null);
    if (info) steps.push((info.data as { stageStep: number }).stageStep);
  }
  return steps.sort((a, b) => a - b);
}

test('a run cancelled at a random step records the last checkpoint its stage wrote', { timeout: 180_000 }, async () => {
  const { env, bundle } = temporal;
  const runId = `cancel-${process.hrtime.bigint()}`;
  const cpu = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUES.cpu,
    activities: createComputeActivities({ home, threads: 1 }),
    maxHeartbeatThrottleInterval: '1 second',
  });
  const control = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: TASK_QUEUES.control,
    workflowBundle: bundle,
    activities: createControlActivities({ home }),
  });
  const input: PipelineInput = { runId, recipe, options: { noCache: true, heartbeatTimeoutSec: 10, maxAttempts: 2 }, resume: null };
  const cancelAfterStep = 30 + Math.floor(Math.random() * 150);

  const outcome = await control.runUntil(
    cpu.runUntil(async () => {
      const handle = await env.client.workflow.start(pipeline, { taskQueue: TASK_QUEUES.control, workflowId: runId, args: [input] });
      for (;;) {
        const live = await fetchProgress(env.client, runId);
        const step = live.stages.find((s) => s.id === 'dense')?.heartbeat?.step ?? 0;
        if (step >= cancelAfterStep) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await handle.cancel();
      return handle.result().then(
        () => 'completed',
        (e: Error) => (e.cause instanceof Error ? e.cause.name : e.name),
      );
    }),
  );
  assert.equal(outcome, 'CancelledFailure');

  const written = await checkpointStepsInStore();
  const last = written.at(-1)!;
  assert.ok(last >= cancelAfterStep, `the stage trained past step ${cancelAfterStep} (its last checkpoint is at ${last})`);

  const { db, close } = openDb({ home });
  try {
    const run = db.select().from(runs).where(eq(runs.id, runId)).get()!;
    assert.equal(run.status, 'cancelled');
    const dense = db.select().from(stages).where(and(eq(stages.runId, runId), eq(stages.stageId, 'dense'))).get()!;
    assert.equal(dense.status, 'cancelled');
    assert.equal(dense.step, last, 'the stage row stands at the last checkpoint written');
    const recorded = db
      .select({ step: stageArtifacts.step })
      .from(stageArtifacts)
      .where(and(eq(stageArtifacts.runId, runId), eq(stageArtifacts.stageId, 'dense'), eq(stageArtifacts.role, 'checkpoint')))
      .all()
      .map((r) => r.step!)
      .sort((a, b) => a - b);
    assert.deepEqual(recorded, written, 'every checkpoint the stage wrote is recorded, the last one included');
  } finally {
    close();
  }
});
