// `sieve status [<run>]`: where a run stands — recorded stage statuses from SQLite, with the
// running stage's live step from Temporal — and whether anything still moves it. A run SQLite
// records as unfinished whose workflow is closed or gone in Temporal, or that no live worker
// serves, is shown as orphaned, with what to do about it. Without a run: the runs still pending or
// running.
//
// Status also cleans up after sieve processes that died (their leases; an embedded server that
// nobody uses any more). It starts the embedded server only to check unfinished runs, and the
// server stops again when it leaves, unless others use it.

import { z } from 'zod';
import { openDb } from '../../activities/store/db';
import { StatusOutput } from '../../schemas/cli';
import { TASK_QUEUES } from '../../workflows/contract';
import { getRunStatus, listRuns } from '../read-models';
import { reconcileHome } from '../reconcile';
import { inspectRun, openTemporal, unservedQueues, type RunState, type TemporalSession } from '../temporal/connect';
import { DevServer } from '../temporal/dev-server';
import { fetchProgress } from '../temporal/progress';
import { defineCommand, jsonOption, printJson, sieveHome, table } from './_shared';

/** Why nothing will move an unfinished run any more, and what to do (one sentence). */
export const Orphan = z.strictObject({
  reason: z.enum(['unserved', 'closed', 'gone']),
  message: z.string(),
});
export type Orphan = z.infer<typeof Orphan>;

/** `sieve status --json`: StatusOutput plus `orphaned` (null while the run progresses or has ended). */
export const RunStatusOutput = StatusOutput.extend({ orphaned: Orphan.nullable() });
export type RunStatusOutput = z.infer<typeof RunStatusOutput>;

const UNFINISHED = new Set(['pending', 'running']);

export default defineCommand({
  name: 'status',
  description: 'show the status of a run (or of all unfinished runs), and whether it is orphaned',
  positionals: ['[<run>]'],
  options: { ...jsonOption },
  async run({ positionals: [runId], values }) {
    const home = sieveHome();
    let recorded = readRecorded(home, runId);
    // Checking an unfinished run is worth starting the server; a run id SQLite does not know is
    // looked up only on a server already up (a run submitted a moment ago has one).
    const start = recorded.some((s) => s !== null && UNFINISHED.has(s.status));
    const temporal = start || recorded.includes(null) ? await openTemporal(home, { start }).catch(cannotLook) : null;
    // Joining the server cleaned up already; without it, clean up here.
    if (!temporal?.embedded) await new DevServer(home).reap();
    // A run whose workflow closed without recording its end (a full disk, say) gets that end now.
    if (temporal && (await reconcileHome(home, temporal.client)).length > 0) recorded = readRecorded(home, runId);
    let statuses: RunStatusOutput[];
    try {
      statuses = await Promise.all(recorded.map((s) => (s === null ? submittedRun(home, runId, temporal) : withLiveState(home, s, temporal))));
    } finally {
      await temporal?.close();
    }
    if (values.json) return printJson(runId ? statuses[0] : { runs: statuses });
    if (statuses.length === 0) return console.log('no unfinished runs.');
    for (const s of statuses) {
      console.log(`${s.id}: ${s.status}${s.orphaned ? ` — orphaned: ${s.orphaned.message}` : ''}`);
      console.log(table(['stage', 'status', 'step'], s.stages.map((st) => [st.id, st.status, st.steps === null ? '' : `${st.step}/${st.steps}`])));
    }
  },
});

/** The runs as SQLite records them; null for a run id it does not know (yet). */
function readRecorded(home: string, runId: string | undefined): (StatusOutput | null)[] {
  const { db, close } = openDb({ home });
  try {
    if (runId) return [getRunStatus(db, runId)];
    const ids = [...listRuns(db, { status: 'running' }), ...listRuns(db, { status: 'pending' })].map((r) => r.id);
    return ids.map((id) => getRunStatus(db, id)!);
  } finally {
    close();
  }
}

function cannotLook(err: Error): null {
  process.stderr.write(`sieve: cannot reach Temporal (${err.message}); statuses are as SQLite records them.\n`);
  return null;
}

/** A run submitted a moment ago (`run --detach`) is in Temporal before a worker records it in SQLite. */
async function submittedRun(home: string, id: string, temporal: TemporalSession | null): Promise<RunStatusOutput> {
  const state = temporal ? await inspectRun(temporal.client, id) : null;
  if (state?.kind !== 'running') throw new Error(`no run "${id}" in ${home}; \`sieve history\` lists the runs.`);
  return { id, status: 'pending', stages: [], orphaned: await orphanOf(temporal!, id, state) };
}

async function withLiveState(home: string, recorded: StatusOutput, temporal: TemporalSession | null): Promise<RunStatusOutput> {
  if (!temporal || !UNFINISHED.has(recorded.status)) return { ...recorded, orphaned: null };
  const state = await inspectRun(temporal.client, recorded.id);
  // A workflow records its end before it closes: one found closed may have finished since SQLite was read.
  if (state.kind !== 'running') {
    const now = readRecorded(home, recorded.id)[0];
    if (now && !UNFINISHED.has(now.status)) return { ...now, orphaned: null };
  }
  const orphaned = await orphanOf(temporal, recorded.id, state);
  // Only a served run has live steps: a dead worker's last heartbeat is no step anyone is at.
  if (!orphaned) await addLiveSteps(temporal, recorded);
  return { ...recorded, orphaned };
}

async function orphanOf(temporal: TemporalSession, id: string, state: RunState): Promise<Orphan | null> {
  const end = `\`sieve cancel ${id}\` records it as cancelled, then \`sieve resume ${id}\` continues it.`;
  if (state.kind === 'gone') return { reason: 'gone', message: `its workflow is gone from Temporal at ${temporal.address}; ${end}` };
  if (state.kind === 'closed') return { reason: 'closed', message: `its workflow ended ${state.status.toLowerCase()} in Temporal without recording it; ${end}` };
  const unserved = state.fresh ? [] : await unservedQueues(temporal.client, state.stages);
  if (unserved.length === 0) return null;
  if (unserved.includes(TASK_QUEUES.control))
    return { reason: 'unserved', message: `no worker serves it (queue ${TASK_QUEUES.control}); \`sieve worker\` continues it, \`sieve cancel ${id}\` ends it.` };
  const waiting = state.stages.filter((s) => unserved.includes(s.queue)).map((s) => s.stageId);
  const queues = unserved.map((q) => `--queue ${q}`).join(' ');
  return {
    reason: 'unserved',
    message: `no worker serves queue ${unserved.join(', ')}, where stage ${waiting.join(', ')} waits; \`sieve worker ${queues}\` continues it, \`sieve cancel ${id}\` ends it.`,
  };
}

/** Running stages report their step in heartbeats, ahead of the last checkpoint SQLite knows. */
async function addLiveSteps(temporal: TemporalSession, s: StatusOutput) {
  const live = await fetchProgress(temporal.client, s.id).catch(() => null);
  for (const stage of live?.stages ?? []) {
    const row = s.stages.find((x) => x.id === stage.id);
    if (row && stage.heartbeat && stage.heartbeat.step > row.step) row.step = stage.heartbeat.step;
  }
}
