// `sieve status [<run>]`: where a run stands — recorded stage statuses from SQLite, with the
// running stage's live step from Temporal when the server is up. Without a run: the runs still
// pending or running. Never starts a server just to look.

import { openDb } from '../../activities/store/db';
import { getRunStatus, listRuns } from '../read-models';
import type { StatusOutput } from '../../schemas/cli';
import { openTemporal } from '../temporal/connect';
import { fetchProgress } from '../temporal/progress';
import { defineCommand, jsonOption, printJson, sieveHome, table } from './_shared';

export default defineCommand({
  name: 'status',
  description: 'show the status of a run (or of all unfinished runs)',
  positionals: ['[<run>]'],
  options: { ...jsonOption },
  async run({ positionals: [runId], values }) {
    const home = sieveHome();
    const { db, close } = openDb({ home });
    let statuses: StatusOutput[];
    try {
      const ids = runId ? [runId] : [...listRuns(db, { status: 'running' }), ...listRuns(db, { status: 'pending' })].map((r) => r.id);
      statuses = await Promise.all(ids.map(async (id) => getRunStatus(db, id) ?? (await submittedRun(home, id))));
    } finally {
      close();
    }
    await addLiveSteps(home, statuses);
    if (values.json) return printJson(runId ? statuses[0] : { runs: statuses });
    if (statuses.length === 0) return console.log('no unfinished runs.');
    for (const s of statuses) {
      console.log(`${s.id}: ${s.status}`);
      console.log(table(['stage', 'status', 'step'], s.stages.map((st) => [st.id, st.status, st.steps === null ? '' : `${st.step}/${st.steps}`])));
    }
  },
});

/** A run submitted a moment ago (`run --detach`) is in Temporal before a worker records it in SQLite. */
async function submittedRun(home: string, id: string): Promise<StatusOutput> {
  const temporal = await openTemporal(home, { start: false }).catch(() => null);
  try {
    const running = await temporal?.client.workflow
      .getHandle(id)
      .describe()
      .then((d) => d.status.name === 'RUNNING')
      .catch(() => false);
    if (!running) throw new Error(`no run "${id}" in ${home}; \`sieve history\` lists the runs.`);
    return { id, status: 'pending', stages: [] };
  } finally {
    await temporal?.close();
  }
}

/** Running stages report their step in heartbeats, ahead of the last checkpoint SQLite knows. */
async function addLiveSteps(home: string, statuses: StatusOutput[]) {
  const running = statuses.filter((s) => s.status === 'running');
  if (running.length === 0) return;
  const temporal = await openTemporal(home, { start: false }).catch(() => null);
  if (!temporal) return;
  try {
    for (const s of running) {
      const live = await fetchProgress(temporal.client, s.id).catch(() => null);
      for (const stage of live?.stages ?? []) {
        const row = s.stages.find((x) => x.id === stage.id);
        if (row && stage.heartbeat && stage.heartbeat.step > row.step) row.step = stage.heartbeat.step;
      }
    }
  } finally {
    await temporal.close();
  }
}
