// Live progress of a run: stage statuses from the workflow's `progress` query, and step, loss and
// ETA of running stages from their activities' latest heartbeat (visible in the workflow's
// pending activities). Nothing here writes anything.

import type { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { Heartbeat, type StageProgress } from '../../schemas/pipeline';
import { progressQuery, stageActivityId } from '../../workflows/contract';

export interface LiveStage extends StageProgress {
  heartbeat: Heartbeat | null;
  /** When the server last received a heartbeat of the current attempt's activity (ms since the epoch). */
  heartbeatAt: number | null;
  attempt: number | null;
  lastFailure: string | null;
}

export interface LiveRun {
  runId: string;
  /** Temporal's view: RUNNING, COMPLETED, FAILED, CANCELLED, TERMINATED, TIMED_OUT, … */
  workflowStatus: string;
  stages: LiveStage[];
}

export async function fetchProgress(client: Client, runId: string): Promise<LiveRun> {
  const handle = client.workflow.getHandle(runId);
  const desc = await handle.describe();
  const running = desc.status.name === 'RUNNING';
  // A query needs a workflow worker; with none polling it would hang, so only ask while running
  // and give up quickly.
  const stages: StageProgress[] = running ? await withTimeout(handle.query(progressQuery), 3000).catch(() => []) : [];
  const pending = new Map((desc.raw.pendingActivities ?? []).map((a) => [a.activityId ?? '', a]));
  return {
    runId,
    workflowStatus: desc.status.name,
    stages: stages.map((s) => {
      const act = pending.get(stageActivityId(s.id));
      const payload = act?.heartbeatDetails?.payloads?.[0];
      const parsed = payload ? Heartbeat.safeParse(defaultPayloadConverter.fromPayload(payload)) : null;
      return {
        ...s,
        heartbeat: parsed?.success ? parsed.data : null,
        heartbeatAt: act?.lastHeartbeatTime?.seconds == null ? null : Number(act.lastHeartbeatTime.seconds) * 1000 + (act.lastHeartbeatTime.nanos ?? 0) / 1e6,
        attempt: act?.attempt ?? null,
        lastFailure: act?.lastFailure?.message ?? null,
      };
    }),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('timed out')), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}
