// `sieve compare <sweep>`: a sweep's points grouped by setting (the values set, whatever the
// seed), and every stage's final metrics as mean ± sd over each setting's seeds. Reads SQLite only:
// a sweep's runs name it in their `run.created` event (`sweep: { id, point }`).

import { and, asc, eq, sql } from 'drizzle-orm';
import type { SweepCompareOutput } from '../schemas/cli';
import type { SweepPoint } from '../schemas/pipeline';
import { events, runs } from '../schemas/tables';
import type { SieveDb } from '../activities/store/db';
import { finalMetrics, listMetrics } from '../activities/store/reads';
import { pointLabel } from './sweep';

/** The runs of sweep `sweepId` with their points, oldest first; empty when there is no such sweep. */
export function sweepRuns(db: SieveDb, sweepId: string): { runId: string; status: string; point: SweepPoint | null }[] {
  return db
    .select({ runId: events.runId, payload: events.payload, status: runs.status })
    .from(events)
    .innerJoin(runs, eq(runs.id, events.runId))
    .where(and(eq(events.type, 'run.created'), sql`json_extract(${events.payload}, '$.sweep.id') = ${sweepId}`))
    .orderBy(asc(events.id))
    .all()
    .map((r) => ({ runId: r.runId, status: r.status, point: (r.payload as { sweep: { point: SweepPoint | null } }).sweep.point }));
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const sd = (xs: number[]) => (xs.length < 2 ? 0 : Math.sqrt(xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1)));

export function compareSweep(db: SieveDb, sweepId: string): SweepCompareOutput | null {
  const all = sweepRuns(db, sweepId);
  if (all.length === 0) return null;
  const settings: SweepCompareOutput['settings'] = [];
  for (const r of all) {
    if (!r.point) continue;
    const label = pointLabel(r.point, false);
    let s = settings.find((x) => x.label === label);
    if (!s) settings.push((s = { label, set: r.point.set, runs: [] }));
    s.runs.push({ id: r.runId, seed: r.point.seed, status: r.status });
  }
  // stage → metric → per setting, the completed runs' values
  const values = new Map<string, Map<string, number[][]>>();
  settings.forEach((s, i) => {
    for (const run of s.runs) {
      if (run.status !== 'completed') continue;
      const byStage = new Map<string, ReturnType<typeof listMetrics>>();
      for (const m of listMetrics(db, run.id)) byStage.set(m.stageId, [...(byStage.get(m.stageId) ?? []), m]);
      for (const [stage, rows] of byStage) {
        for (const [name, value] of Object.entries(finalMetrics(rows))) {
          if (value === null) continue;
          const key = values.get(stage) ?? values.set(stage, new Map()).get(stage)!;
          const cells = key.get(name) ?? key.set(name, settings.map(() => [])).get(name)!;
          cells[i].push(value);
        }
      }
    }
  });
  const metrics: SweepCompareOutput['metrics'] = [];
  for (const [stage, names] of values) {
    for (const [name, cells] of [...names].sort(([a], [b]) => a.localeCompare(b))) {
      metrics.push({ stage, name, values: cells.map((xs) => (xs.length ? { mean: mean(xs), sd: sd(xs), n: xs.length } : null)) });
    }
  }
  const shared = all.find((r) => r.point === null);
  return { sweep: sweepId, shared: shared?.runId ?? null, settings, metrics };
}
