// bench/pipeline.ts — the pipeline's own costs (DESIGN.md targets C3 and C4), measured through the
// real CLI as a user runs it.
//
//   node --import tsx bench/pipeline.ts [--no-write] [--only c3|c4]
//
// C3, orchestration overhead: examples/quickstart.yaml end to end; overhead = the command's wall
// time minus the stages' compute time (the time their activities spent working, as recorded in
// SQLite), as a share of the wall time. The quickstart is a chain, so its stages' compute times add
// up to its critical path. Three set-ups: the embedded default on a fresh SIEVE_HOME (it starts a
// Temporal dev server and bundles the workflow code), the embedded default again (bundle cached),
// and a long-running `sieve server` + `sieve worker` (the multi-machine set-up, nothing to start).
//
// C4, work lost after a kill: a pretrain stage with checkpoint interval k on a compute worker
// (`sieve worker --queue cpu`, the control queue on its own worker as on a control host) that is
// killed with SIGKILL 80% of the way through an interval; a second compute worker takes the retry.
// Steps recomputed = the step the killed attempt had reached minus the step the retry resumed from.
// The reached step is known from heartbeats (sent at least every second), so it is a lower bound;
// the retry resuming from the last checkpoint the killed attempt wrote bounds it above by k.
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';

import Database from 'better-sqlite3';
import { Client, Connection } from '@temporalio/client';

import { NAMESPACE } from '../cli/temporal/dev-server';
import { fetchProgress } from '../cli/temporal/progress';
import type { ShowOutput } from '../schemas/cli';
import { freePort, lastJson, serve, sieve, tempHome, waitFor, writeRecipe } from '../test/cli/helpers';
import { appendResults, machine } from './results';

const args = process.argv.slice(2);
const write = !args.includes('--no-write');
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : null;
const QUICKSTART = join(__dirname, '..', 'examples', 'quickstart.yaml');

const show = async (home: string, id: string) => JSON.parse((await sieve(home, ['show', id, '--json'])).stdout) as ShowOutput;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
const stop = async (child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM') => {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
};

/** A `sieve server` on free ports for `home`; resolves once it answers. */
async function startServer(home: string): Promise<{ address: string; process: ChildProcess }> {
  const [port, uiPort] = [await freePort(), await freePort()];
  const child = serve(home, ['server', '--port', String(port), '--ui-port', String(uiPort)]);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  await waitFor('sieve server', () => out.includes('Web UI'));
  return { address: `127.0.0.1:${port}`, process: child };
}

// ---------------------------------------------------------------------------------------------
// C3

interface OverheadRow {
  setup: string;
  wallMs: number;
  computeMs: number;
  /** Command start → the run row's creation (CLI start-up, server start, bundling, submission). */
  beforeMs: number;
  /** Inside the workflow, between and around the stages' compute. */
  betweenMs: number;
  /** The run's end → the command's exit. */
  afterMs: number;
}

async function runQuickstart(setup: string, home: string, extraArgs: string[], env: Record<string, string> = {}): Promise<OverheadRow> {
  const began = Date.now();
  const r = await sieve(home, ['run', QUICKSTART, '--json', ...extraArgs], env);
  const ended = Date.now();
  if (r.code !== 0) throw new Error(`quickstart (${setup}) failed:\n${r.stderr}`);
  const run = await show(home, lastJson<{ id: string }>(r.stdout).id);
  if (run.stages.some((s) => s.status !== 'completed')) throw new Error(`quickstart (${setup}): a stage was not computed (${run.stages.map((s) => s.status)})`);
  const computeMs = run.stages.reduce((a, s) => a + (s.timings.computeMs ?? 0), 0);
  const created = Date.parse(run.createdAt);
  const finished = Date.parse(run.finishedAt!);
  const row = { setup, wallMs: ended - began, computeMs, beforeMs: created - began, betweenMs: finished - created - computeMs, afterMs: ended - finished };
  console.log(`C3 ${setup}: wall ${seconds(row.wallMs)}, compute ${seconds(computeMs)}, overhead ${(100 * (1 - computeMs / row.wallMs)).toFixed(1)}%`);
  return row;
}

async function overhead(): Promise<OverheadRow[]> {
  const home = tempHome('bench-c3');
  try {
    const rows = [await runQuickstart('embedded, fresh SIEVE_HOME', home, []), await runQuickstart('embedded, again (--no-cache)', home, ['--no-cache'])];
    const server = await startServer(home);
    const env = { TEMPORAL_ADDRESS: server.address };
    const worker = serve(home, ['worker'], env);
    try {
      await waitFor('the worker to poll', async () => (await sieve(home, ['history', '--json'])).code === 0);
      rows.push(await runQuickstart('`sieve server` + `sieve worker` (--no-cache)', home, ['--no-cache'], env));
    } finally {
      await stop(worker);
      await stop(server.process);
    }
    return rows;
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

function overheadTable(rows: OverheadRow[]): string {
  const lines = [
    '| set-up | wall | stages\' compute | overhead (C3) | before the run starts | inside the workflow | after it ends |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    const share = (ms: number) => `${(100 * (ms / r.wallMs)).toFixed(1)}%`;
    lines.push(
      `| ${r.setup} | ${seconds(r.wallMs)} | ${seconds(r.computeMs)} | **${share(r.wallMs - r.computeMs)}** | ${seconds(r.beforeMs)} | ${seconds(r.betweenMs)} | ${seconds(r.afterMs)} |`,
    );
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// C4

interface KillRow {
  interval: number;
  killAt: number;
  /** The step of the last heartbeat before the kill: a lower bound on the step reached. */
  observed: number;
  /** That step plus the steps the measured rate fits between that heartbeat and the kill. */
  estimated: number;
  lastCheckpointBeforeKill: number;
  resumedFrom: number;
  recoverMs: number;
  identical: boolean;
}

const killRecipe = (k: number) => `name: bench-kill-${k}
seed: 3
model: { family: gpt2, layers: 4, dim: 128, heads: 4, context: 128, tokenizer: bytes }
data:
  corpus: sotu
  train: { years: [1790, 1999] }
  eval:
    recent: { corpus: sotu, years: [2015, 2016] }
stages:
  - { id: dense, kind: pretrain, steps: ${4 * k}, batch: 8, lr: 3.0e-3, checkpointEvery: ${k} }
`;
const KILL_TOKENS_PER_STEP = 8 * 128;

async function killOnce(home: string, address: string, k: number, reference: Map<number, string>): Promise<KillRow> {
  const env = { TEMPORAL_ADDRESS: address };
  const recipe = writeRecipe(home, `kill-${k}.yaml`, killRecipe(k));
  const killAt = 2 * k + Math.round(0.8 * k);
  const connection = await Connection.connect({ address });
  const client = new Client({ connection, namespace: NAMESPACE });
  let doomed = serve(home, ['worker', '--queue', 'cpu'], env);
  const rescuer: ChildProcess[] = [];
  try {
    const runner = sieve(home, ['run', recipe, '--json', '--no-cache', '--heartbeat-timeout', '2'], env);
    const runId = await waitFor('the run', async () => JSON.parse((await sieve(home, ['history', '--json', '--name', `bench-kill-${k}`, '--status', 'running'])).stdout).runs[0]?.id as string | undefined);
    const dense = async () => (await fetchProgress(client, runId).catch(() => null))?.stages[0];
    // Heartbeats arrive about once a second; between them, extrapolate at the heartbeat's rate.
    const estimate = (hb: { step: number; tokensPerSec: number | null }, at: number) => hb.step + ((hb.tokensPerSec ?? 0) / KILL_TOKENS_PER_STEP) * ((Date.now() - at) / 1000);
    const { observed, estimated } = await waitFor(`step ${killAt}`, async () => {
      const now = await dense();
      if (!now?.heartbeat || now.heartbeatAt === null) return null;
      const est = estimate(now.heartbeat, now.heartbeatAt);
      return est >= killAt ? { observed: now.heartbeat.step, estimated: Math.floor(est) } : null;
    }, 600_000);
    await stop(doomed, 'SIGKILL');
    const killedAt = Date.now();
    rescuer.push(serve(home, ['worker', '--queue', 'cpu'], env));
    await waitFor('the retry to regain the lost steps', async () => {
      const now = await dense();
      return (now?.heartbeatAt ?? 0) > killedAt && (now?.heartbeat?.step ?? 0) >= estimated ? true : null;
    }, 600_000);
    const recoverMs = Date.now() - killedAt;
    const r = await runner;
    if (r.code !== 0) throw new Error(`kill run (k = ${k}) failed:\n${r.stderr}`);

    const run = await show(home, runId);
    const db = new Database(join(home, 'sieve.db'), { readonly: true });
    const events = (type: string) =>
      db
        .prepare('SELECT at, payload FROM events WHERE run_id = ? AND stage_id = ? AND type = ?')
        .all(runId, 'dense', type)
        .map((row) => ({ at: (row as { at: number }).at, ...(JSON.parse((row as { payload: string }).payload) as { step: number }) }));
    const resumed = events('stage.resumed');
    const recordedBeforeKill = events('stage.checkpoint').filter((e) => e.at < killedAt).map((e) => e.step);
    db.close();
    if (resumed.length !== 1) throw new Error(`kill run (k = ${k}): expected one resume event, found ${resumed.length}`);
    const model = run.stages[0].artifacts.find((a) => a.role === 'model')!.sha256;
    const row = {
      interval: k,
      killAt,
      observed,
      estimated,
      lastCheckpointBeforeKill: Math.max(0, ...recordedBeforeKill),
      resumedFrom: resumed[0].step,
      recoverMs,
      identical: reference.get(k) === model,
    };
    console.log(`C4 k=${k}: killed at step ≈ ${estimated} (heartbeat ${observed}), resumed from ${row.resumedFrom}, recovered in ${seconds(recoverMs)}, final model ${row.identical ? 'bit-identical' : 'DIFFERENT'}`);
    return row;
  } finally {
    await stop(doomed);
    for (const w of rescuer) await stop(w);
    await connection.close();
  }
}

async function workLost(): Promise<KillRow[]> {
  const home = tempHome('bench-c4');
  const server = await startServer(home);
  const env = { TEMPORAL_ADDRESS: server.address };
  const control = serve(home, ['worker', '--queue', 'sieve'], env);
  try {
    const intervals = [25, 50, 100];
    // Uninterrupted references, for the bit-identity check.
    const reference = new Map<number, string>();
    const compute = serve(home, ['worker', '--queue', 'cpu'], env);
    try {
      for (const k of intervals) {
        const r = await sieve(home, ['run', writeRecipe(home, `ref-${k}.yaml`, killRecipe(k)), '--json'], env);
        if (r.code !== 0) throw new Error(`reference run (k = ${k}) failed:\n${r.stderr}`);
        const run = await show(home, lastJson<{ id: string }>(r.stdout).id);
        reference.set(k, run.stages[0].artifacts.find((a) => a.role === 'model')!.sha256);
      }
    } finally {
      await stop(compute);
    }
    const rows: KillRow[] = [];
    for (const k of intervals) rows.push(await killOnce(home, server.address, k, reference));
    return rows;
  } finally {
    await stop(control);
    await stop(server.process);
    rmSync(home, { recursive: true, force: true });
  }
}

function killTable(rows: KillRow[]): string {
  const lines = [
    '| checkpoint interval k | kill aimed at step | step at the kill (last heartbeat / extrapolated) | last checkpoint recorded before the kill | retry resumed from | steps recomputed (C4) | kill → lost ground regained | final model vs uninterrupted |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const r of rows) {
    // The retry must start from the newest checkpoint the killed attempt wrote; then it recomputes < k steps.
    const verdict = r.resumedFrom >= r.lastCheckpointBeforeKill ? `≤ k` : 'MORE than k: resumed from a stale checkpoint';
    lines.push(
      `| ${r.interval} | ${r.killAt} | ${r.observed} / ${r.estimated} | ${r.lastCheckpointBeforeKill} | ${r.resumedFrom} | ≈ ${Math.max(0, r.estimated - r.resumedFrom)} (${verdict}) | ${seconds(r.recoverMs)} | ${r.identical ? 'bit-identical' : 'different'} |`,
    );
  }
  return lines.join('\n');
}

async function main() {
  const m = machine();
  const loadBefore = loadavg()[0];
  console.log(`sieve pipeline benchmark: ${m.cpu}, nproc ${m.nproc}`);
  const c3 = only === null || only === 'c3' ? await overhead() : [];
  const c4 = only === null || only === 'c4' ? await workLost() : [];
  const date = new Date().toISOString().slice(0, 10);
  const entry = [
    `### ${date}`,
    '',
    `- machine: ${m.cpu}, \`nproc\` = ${m.nproc}`,
    `- command: \`node --import tsx bench/pipeline.ts${only ? ` --only ${only}` : ''}\`; 1-minute load average ${loadBefore.toFixed(2)} before, ${loadavg()[0].toFixed(2)} after`,
    ...(c3.length ? ['', 'C3, orchestration overhead of examples/quickstart.yaml (wall time minus the stages\' compute, as a share of the wall time):', '', overheadTable(c3)] : []),
    ...(c4.length ? ['', 'C4, work lost when the compute worker is killed with SIGKILL (heartbeat timeout 2 s):', '', killTable(c4)] : []),
  ].join('\n');
  console.log(`\n${entry}`);
  if (write) appendResults('Pipeline (orchestration and durability)', 'Produced by `bench/pipeline.ts` (targets C3 and C4 of DESIGN.md); newest entry last.', entry);
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
