// Following a run to its end: in embedded mode the in-process workers execute it; meanwhile the
// progress is drawn (a bar per stage on a terminal, one line per change otherwise). Ctrl-C stops
// watching and this process's workers; the run itself stays durable in Temporal.

import type { Client } from '@temporalio/client';
import type { StageProgress } from '../../schemas/pipeline';
import { fetchProgress, type LiveRun, type LiveStage } from '../temporal/progress';
import type { TaskQueue } from '../../workflows/contract';
import type { TemporalSession } from '../temporal/connect';
import { formatDuration } from './_shared';

export type RunEnd = { kind: 'closed'; status: string; stages: StageProgress[] } | { kind: 'detached' };

/**
 * Serves the run's queues in-process when sieve runs the server itself, draws progress, and waits
 * for the workflow to close. Returns 'detached' when interrupted by the user.
 */
export async function followRun(temporal: TemporalSession, runId: string, opts: { home: string; queues: TaskQueue[]; quiet: boolean }): Promise<RunEnd> {
  const workers = temporal.embedded ? await loadWorkerModule().createWorkers({ target: temporal.target, home: opts.home, queues: opts.queues }) : null;
  const workersDone = workers?.run();
  const view = opts.quiet ? null : new ProgressView(process.stderr);

  let interrupted = false;
  const interrupt = () => {
    interrupted = true;
  };
  process.once('SIGINT', interrupt);
  process.once('SIGTERM', interrupt);

  let last: LiveRun | null = null;
  // Wake the moment the run closes (a long poll on its result), or every half second to redraw. If
  // the long poll fails (the server restarting), the half-second ticks carry on alone.
  const closed = temporal.client.workflow
    .getHandle(runId)
    .result()
    .then(() => true, () => false);
  try {
    for (;;) {
      await Promise.race([sleep(500), closed.then((ok) => (ok ? undefined : new Promise(noop)))]);
      if (interrupted) break;
      await temporal.keepAlive().catch(() => undefined);
      last = await fetchProgress(temporal.client, runId).catch(() => last);
      if (last) view?.draw(last);
      if (last && last.workflowStatus !== 'RUNNING') break;
    }
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGTERM', interrupt);
    view?.close();
    workers?.shutdown();
    await workersDone;
  }
  if (interrupted) return { kind: 'detached' };
  const final = await finalStages(temporal.client, runId);
  return { kind: 'closed', status: last?.workflowStatus ?? 'UNKNOWN', stages: final };
}

/** The stages as the finished workflow reported them (its result, or the last query answer). */
async function finalStages(client: Client, runId: string): Promise<StageProgress[]> {
  try {
    const res = (await client.workflow.getHandle(runId).result()) as { stages: StageProgress[] };
    return res.stages;
  } catch {
    return [];
  }
}

/**
 * The workers' modules (the Temporal worker, the engine, the activities) take most of a second to
 * load, so they load on first use — or while an embedded dev server boots (see `run`).
 */
export const loadWorkerModule = () => require('../temporal/worker') as typeof import('../temporal/worker');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const noop = () => {};

/** Draws one line per stage; redraws in place on a terminal, prints changes otherwise. */
class ProgressView {
  private drawn = 0;
  private lastLines = new Map<string, string>();
  constructor(private readonly out: NodeJS.WriteStream) {}

  draw(run: LiveRun) {
    const lines = run.stages.map((s) => this.line(s));
    if (this.out.isTTY) {
      if (this.drawn) this.out.write(`\x1b[${this.drawn}A`);
      for (const l of lines) this.out.write(`\x1b[2K${l.slice(0, (this.out.columns ?? 120) - 1)}\n`);
      this.drawn = lines.length;
      return;
    }
    // Without a terminal, print a stage's line when its status changes or it crosses 10% steps.
    run.stages.forEach((s, i) => {
      const key = `${s.status}:${s.heartbeat ? Math.floor((10 * s.heartbeat.step) / Math.max(1, s.heartbeat.steps)) : ''}`;
      if (this.lastLines.get(s.id) !== key) {
        this.lastLines.set(s.id, key);
        this.out.write(`${lines[i]}\n`);
      }
    });
  }

  private line(s: LiveStage): string {
    const head = `${s.id.padEnd(12)} ${s.kind.padEnd(9)}`;
    const hb = s.heartbeat;
    if (s.status === 'running' && hb) {
      const frac = hb.steps ? hb.step / hb.steps : 0;
      const width = 24;
      const filled = Math.round(frac * width);
      const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
      const parts = [`${hb.step}/${hb.steps}`];
      if (hb.loss !== null) parts.push(`loss ${hb.loss.toFixed(4)}`);
      if (hb.tokensPerSec !== null) parts.push(`${Math.round(hb.tokensPerSec)} tok/s`);
      if (hb.etaSec !== null) parts.push(`ETA ${formatDuration(hb.etaSec * 1000)}`);
      if (s.attempt && s.attempt > 1) parts.push(`attempt ${s.attempt}`);
      // Heartbeats arrive every second while a worker computes; a long silence means it is gone
      // and Temporal will retry the stage elsewhere once the heartbeat timeout passes.
      const silentMs = s.heartbeatAt === null ? 0 : Date.now() - s.heartbeatAt;
      if (silentMs > 5_000) parts.push(`no heartbeat for ${formatDuration(silentMs)}`);
      return `${head} ${bar} ${parts.join('  ')}`;
    }
    const extra = s.status === 'failed' ? `  ${s.error ?? ''}` : s.reason && s.status !== 'running' ? `  (${s.reason})` : '';
    return `${head} ${s.status}${extra}`;
  }

  close() {
    this.drawn = 0;
  }
}
