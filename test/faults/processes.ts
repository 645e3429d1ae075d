// What the lock, lease and orphan fault tests share: waiting for a killed process, finding its
// lease, reading from a run's Temporal history the checkpoints its stages reported, and checking
// that a finished run's record and files are untouched.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Client, Connection, defaultPayloadConverter } from '@temporalio/client';
import type { ShowOutput } from '../../schemas/cli';
import { checkpointSaved } from '../../workflows/contract';
import { NAMESPACE } from '../../cli/temporal/dev-server';
import { sieve } from '../cli/helpers';

/** Resolves with the exit code (null when killed by a signal) once the child has exited. */
export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** The lease file of process `pid` in the home's embedded server, or null. */
export function leaseOf(home: string, pid: number): string | null {
  const dir = path.join(home, 'temporal', 'leases');
  const name = fs.existsSync(dir) ? fs.readdirSync(dir).find((n) => n === String(pid) || n.startsWith(`${pid}-`)) : undefined;
  return name ? path.join(dir, name) : null;
}

export async function show(home: string, id: string, env: Record<string, string> = {}): Promise<ShowOutput> {
  const r = await sieve(home, ['show', id, '--json'], env);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as ShowOutput;
}

/** The step of each checkpoint `stageId` reported to its workflow (the `checkpointSaved` signals in its history). */
export async function reportedCheckpoints(address: string, runId: string, stageId: string): Promise<number[]> {
  const connection = await Connection.connect({ address });
  try {
    const history = await new Client({ connection, namespace: NAMESPACE }).workflow.getHandle(runId).fetchHistory();
    return (history.events ?? [])
      .map((e) => e.workflowExecutionSignaledEventAttributes)
      .filter((s) => s?.signalName === checkpointSaved.name)
      .map((s) => defaultPayloadConverter.fromPayload<{ stageId: string; step: number }>(s!.input!.payloads![0]))
      .filter((c) => c.stageId === stageId)
      .map((c) => c.step);
  } finally {
    await connection.close();
  }
}

/** Steps of the checkpoints SQLite links to a stage. */
export function checkpointSteps(run: ShowOutput, stageId: string): number[] {
  return run.stages
    .find((s) => s.id === stageId)!
    .artifacts.filter((a) => a.role === 'checkpoint')
    .map((a) => a.step!)
    .sort((a, b) => a - b);
}

/** A finished run is as it was recorded, and every file it names still has its hash. */
export async function assertIntact(home: string, before: ShowOutput) {
  assert.deepEqual(await show(home, before.id), before, `run ${before.id} is recorded as it was`);
  for (const a of before.stages.flatMap((s) => s.artifacts)) {
    const bytes = fs.readFileSync(a.path);
    assert.equal(crypto.createHash('sha256').update(bytes).digest('hex'), a.sha256, `${a.path} matches its hash`);
  }
}
