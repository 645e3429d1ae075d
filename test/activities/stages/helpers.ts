// Running stage activities outside a worker: MockActivityEnvironment supplies the activity
// context (attempt, heartbeat details, cancellation), and a stand-in client plays the workflow the
// activity signals its checkpoints to and queries for the newest one it was told of.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import type { Client } from '@temporalio/client';
import type { Info as ActivityInfo } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';

import { createComputeActivities, type ComputeActivity } from '../../../activities';
import type { CheckpointRef, ComputeResult, Heartbeat, StageOutput, StageTask } from '../../../schemas/pipeline';

/** A SIEVE_HOME for this test file, removed afterwards, and its compute activities (one engine thread). */
export function computeFixture(label: string) {
  const home = mkdtempSync(path.join(os.tmpdir(), `sieve-${label}-`));
  after(() => rmSync(home, { recursive: true, force: true }));
  return { home, activities: createComputeActivities({ home, threads: 1 }) };
}

/** The workflow as a stage activity sees it: it records checkpoint signals and answers the progress query. */
export function fakeWorkflow(known: CheckpointRef | null = null) {
  const signalled: CheckpointRef[] = [];
  const handle = {
    signal: async (_signal: unknown, ref: CheckpointRef) => {
      signalled.push(ref);
    },
    query: async () => (known ? [{ id: known.stageId, checkpoint: known }] : []),
  };
  // The worker runs an activity inside client.withAbortSignal; nothing here needs the signal.
  const client = { workflow: { getHandle: () => handle }, withAbortSignal: <R>(_: AbortSignal, fn: () => Promise<R>) => fn() } as unknown as Client;
  return { client, signalled };
}

/** An activity environment with the given attempt and heartbeat details, collecting the heartbeats it sends. */
export function activityEnv(client: Client, info: Partial<ActivityInfo> = {}) {
  // Failures are what some tests expect: the SDK's "Activity failed" warnings would only be noise.
  const env = new MockActivityEnvironment({ ...info }, { client, logger: new DefaultLogger('ERROR') });
  const heartbeats: Heartbeat[] = [];
  env.on('heartbeat', (details: Heartbeat) => heartbeats.push(details));
  const run = (activity: ComputeActivity, task: StageTask) => env.run<[StageTask], ComputeResult, ComputeActivity>(activity, task);
  return { env, heartbeats, run };
}

export function artifact(output: StageOutput, role: string) {
  const found = output.artifacts.find((a) => a.role === role);
  if (!found) throw new Error(`no ${role} artifact in ${JSON.stringify(output.artifacts)}`);
  return found;
}
