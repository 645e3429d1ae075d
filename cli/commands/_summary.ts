// The table printed when `sieve run` / `sieve resume` finishes: one row per stage with how it
// ended, why it ran or was reused, its time and its headline metrics.

import { createArtifactStore } from '../../activities/store/artifacts';
import { openDb } from '../../activities/store/db';
import { getRun } from '../read-models';
import { formatDuration, table } from './_shared';

/** Metrics worth a column: final losses and perplexities, not every counter. */
const HEADLINE = /(^train\/loss$|\/ppl$)/;

export function printSummary(home: string, runId: string) {
  const { db, close } = openDb({ home });
  try {
    const run = getRun(db, createArtifactStore(home), runId);
    if (!run) return;
    const rows = run.stages.map((s) => [
      s.id,
      s.kind,
      s.status,
      formatDuration(s.timings.wallMs),
      Object.entries(s.metrics)
        .filter(([k, v]) => HEADLINE.test(k) && v !== null)
        .map(([k, v]) => `${k}=${formatNumber(v!)}`)
        .join(' '),
    ]);
    console.log(`\n${run.id}: ${run.status}${run.error ? ` (${run.error})` : ''}`);
    console.log(table(['stage', 'kind', 'status', 'time', 'metrics'], rows));
    const why = run.stages.filter((s) => s.reason || s.error).map((s) => `  ${s.id}: ${s.error ?? s.reason}`);
    if (why.length) console.log(`\n${why.join('\n')}`);
    console.log(`\nsieve show ${run.id} for artifacts and lineage.`);
  } finally {
    close();
  }
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 1000 ? v.toFixed(0) : v.toPrecision(4);
}
