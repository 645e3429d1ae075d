// Which Temporal to talk to: TEMPORAL_ADDRESS when set (a shared cluster, workers elsewhere), with
// the Temporal CLI's own settings for it (TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, or a
// profile of TEMPORAL_CONFIG_FILE, read by @temporalio/envconfig), otherwise the embedded dev
// server of this SIEVE_HOME, started on demand. And who serves a run:
// its workflow's state in Temporal and whether a live worker polls the queues it waits on, so the
// CLI can tell a run that progresses from an orphan (a run nobody serves, or whose workflow is
// closed or gone while SQLite still says it runs).

import os from 'node:os';
import { Client, Connection, WorkflowNotFoundError } from '@temporalio/client';
import { loadClientConnectConfig, type ClientConnectConfig } from '@temporalio/envconfig';
import type { temporal } from '@temporalio/proto';
import { stageActivityId, TASK_QUEUES } from '../../workflows/contract';
import { DevServer, NAMESPACE, liveness, thisProcess, type ProcessId } from './dev-server';

/** Where a client or a worker connects, and the namespace it works in. */
export interface TemporalTarget {
  options: ClientConnectConfig['connectionOptions'] & { address: string };
  namespace: string;
}

export interface TemporalSession {
  client: Client;
  address: string;
  /** The same server for workers this process starts. */
  target: TemporalTarget;
  /** True when sieve runs the server itself (and so must run the workers too). */
  embedded: boolean;
  /** Embedded mode: restarts the dev server (same store, same port) if its process died. */
  keepAlive(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Connects to Temporal. In embedded mode `start: false` returns null instead of starting a server,
 * for read-only commands that should not spin one up just to look. Joining the embedded server
 * cleans up after dead processes first (see DevServer.lease).
 */
export async function openTemporal(home: string, opts: { start: boolean; whileStarting?: () => void }): Promise<TemporalSession | null> {
  const remote = process.env.TEMPORAL_ADDRESS;
  if (remote) {
    const { connectionOptions, namespace } = loadClientConnectConfig();
    const target: TemporalTarget = { options: { ...connectionOptions, address: connectionOptions.address ?? remote }, namespace: namespace ?? NAMESPACE };
    const connection = await Connection.connect(target.options).catch((err: Error) => {
      throw new Error(`Cannot reach Temporal at TEMPORAL_ADDRESS=${remote}: ${err.message}`);
    });
    return { client: new Client({ connection, namespace: target.namespace }), address: remote, target, embedded: false, keepAlive: async () => {}, close: () => connection.close() };
  }
  const server = new DevServer(home);
  if (!opts.start && !server.record()) return null;
  const lease = await server.lease({ whileStarting: opts.whileStarting });
  const connection = await Connection.connect({ address: lease.address });
  return {
    client: new Client({ connection, namespace: NAMESPACE }),
    address: lease.address,
    target: { options: { address: lease.address }, namespace: NAMESPACE },
    embedded: true,
    keepAlive: async () => {
      if (!server.record()) await server.ensure();
    },
    close: async () => {
      await connection.close();
      await lease.release();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Workers: who they are, and whether they are still there

/**
 * The identity a sieve worker gives Temporal: `sieve:<pid>:<start time>@<host>`. Temporal keeps
 * listing a worker as a poller for minutes after it died; with this, any process on the same host
 * can tell at once whether the worker still runs.
 */
export function workerIdentity(): string {
  const me = thisProcess();
  return `sieve:${me.pid}:${me.start ?? '-'}@${os.hostname()}`;
}

/** The process behind a worker identity, when it is a sieve worker of this host; null otherwise. */
function localWorker(identity: string): ProcessId | null {
  const m = /^sieve:(\d+):([^@]+)@(.+)$/.exec(identity);
  if (!m || m[3] !== os.hostname()) return null;
  return { pid: Number(m[1]), start: m[2] === '-' ? null : m[2] };
}

/** True when the worker is known to be gone: a sieve worker of this host whose process has ended. */
export function workerGone(identity: string): boolean {
  const id = localWorker(identity);
  return id !== null && liveness(id) !== 'alive';
}

/**
 * A long poll lasts about a minute and each one refreshes the poller's last access time, so a
 * worker of another host (whose process cannot be checked) counts as live if it polled this
 * recently.
 */
const REMOTE_POLLER_FRESH_MS = 75_000;

const QUEUE_TYPE = { workflow: 1, activity: 2 } as const satisfies Record<string, temporal.api.enums.v1.TaskQueueType>;

/** The identities of the workers that poll `queue` for tasks of `type` and are still alive. */
export async function livePollers(client: Client, queue: string, type: keyof typeof QUEUE_TYPE): Promise<string[]> {
  const res = await client.workflowService.describeTaskQueue({ namespace: client.options.namespace, taskQueue: { name: queue }, taskQueueType: QUEUE_TYPE[type] });
  const now = Date.now();
  return (res.pollers ?? [])
    .filter((p) => {
      const identity = p.identity ?? '';
      if (localWorker(identity)) return !workerGone(identity);
      return now - timestampMs(p.lastAccessTime) < REMOTE_POLLER_FRESH_MS;
    })
    .map((p) => p.identity ?? '');
}

// ---------------------------------------------------------------------------------------------
// Runs: what Temporal knows and who serves them

const PENDING_STATE: Record<number, PendingStage['state']> = { 1: 'scheduled', 2: 'started', 3: 'cancel-requested' };
/** temporal.api.enums.v1.PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED */
const WORKFLOW_TASK_STARTED = 2;

/** A stage's compute activity that Temporal holds open. */
export interface PendingStage {
  stageId: string;
  activityId: string;
  queue: string;
  /** `other`: paused or a state newer than this code. */
  state: 'scheduled' | 'started' | 'cancel-requested' | 'other';
  /** The worker that started the current attempt ('' before one did). */
  worker: string;
  heartbeatTimeoutMs: number | null;
  /** When the current attempt last heartbeated, or started if it never did (ms since the epoch); null before a start. */
  lastSignOfLifeMs: number | null;
}

export type RunState =
  | { kind: 'gone' }
  | { kind: 'closed'; status: string }
  /**
   * `fresh`: submitted a moment ago and not yet picked up by any worker, which may still be
   * starting. `taskTimesOutAtMs`: when a workflow task a worker started (and, if that worker died,
   * will never finish) times out and goes to another worker; null when none is started.
   */
  | { kind: 'running'; stages: PendingStage[]; fresh: boolean; taskTimesOutAtMs: number | null };

/** How long a submitted workflow may wait for its first worker (a detached worker takes seconds to load) before it counts as unserved. */
const FIRST_PICKUP_GRACE_MS = 20_000;

/** The run's workflow as Temporal sees it, with the stages it holds open. */
export async function inspectRun(client: Client, runId: string): Promise<RunState> {
  let desc;
  try {
    desc = await client.workflow.getHandle(runId).describe();
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return { kind: 'gone' };
    throw err;
  }
  if (desc.status.name !== 'RUNNING') return { kind: 'closed', status: desc.status.name };
  const prefix = stageActivityId('');
  const stages = (desc.raw.pendingActivities ?? [])
    .filter((a) => a.activityId?.startsWith(prefix))
    .map(
      (a): PendingStage => ({
        stageId: a.activityId!.slice(prefix.length),
        activityId: a.activityId!,
        queue: a.activityOptions?.taskQueue?.name ?? TASK_QUEUES.cpu,
        state: PENDING_STATE[a.state ?? 0] ?? 'other',
        worker: a.lastWorkerIdentity ?? '',
        heartbeatTimeoutMs: a.activityOptions?.heartbeatTimeout ? timestampMs(a.activityOptions.heartbeatTimeout) : null,
        lastSignOfLifeMs: a.lastHeartbeatTime ? timestampMs(a.lastHeartbeatTime) : a.lastStartedTime ? timestampMs(a.lastStartedTime) : null,
      }),
    );
  // Started and its first workflow task scheduled: two events until a worker picks it up.
  const pickedUp = Number(desc.historyLength) > 2;
  const task = desc.raw.pendingWorkflowTask;
  const taskTimeout = desc.raw.executionConfig?.defaultWorkflowTaskTimeout;
  const taskTimesOutAtMs = task?.state === WORKFLOW_TASK_STARTED && task.startedTime && taskTimeout ? timestampMs(task.startedTime) + timestampMs(taskTimeout) : null;
  return { kind: 'running', stages, fresh: !pickedUp && Date.now() - desc.startTime.getTime() < FIRST_PICKUP_GRACE_MS, taskTimesOutAtMs };
}

/**
 * The queues a running workflow waits on that no live worker polls: the control queue (without
 * it nothing about the run moves, not even its cancellation) and the queues of its open stages.
 */
export async function unservedQueues(client: Client, stages: PendingStage[]): Promise<string[]> {
  const needed: [string, keyof typeof QUEUE_TYPE][] = [[TASK_QUEUES.control, 'workflow']];
  // A stage being cancelled needs only its own worker's acknowledgement, not a new worker.
  for (const queue of new Set(stages.filter((s) => s.state !== 'cancel-requested').map((s) => s.queue))) needed.push([queue, 'activity']);
  const unserved: string[] = [];
  for (const [queue, type] of needed) if ((await livePollers(client, queue, type)).length === 0) unserved.push(queue);
  return unserved;
}

/** A protobuf Timestamp or Duration in milliseconds. */
function timestampMs(t: { seconds?: unknown; nanos?: number | null } | null | undefined): number {
  return t ? Number(t.seconds ?? 0) * 1000 + (t.nanos ?? 0) / 1e6 : 0;
}
