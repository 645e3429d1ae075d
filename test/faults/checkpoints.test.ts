// Checkpoint faults and the store's bounds, with real processes (`sieve server`, `sieve worker`,
// `sieve run`, `sieve resume`, `sieve gc`): a cancelled run whose newest checkpoint file is
// damaged resumes from the newest intact one and says so, also when the run resumed is itself a
// resume that failed before its first checkpoint, and ends with the bits of an uninterrupted run;
// checkpoint and history storage grows linearly with the steps; keepCheckpoints prunes; `gc
// --dry-run` lists what `gc` then deletes, which is only what nothing needs.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { and, eq } from 'drizzle-orm';

import { ArtifactCorruptError, ArtifactMissingError, createArtifactStore } from '../../activities/store/artifacts';
import { loadCorpus } from '../../activities/data/corpus';
import { openDb } from '../../activities/store/db';
import type { GcReport } from '../../activities/store/gc';
import { linkArtifacts } from '../../activities/store/writes';
import type { ShowOutput } from '../../schemas/cli';
import { formatBytes } from '../../schemas/memory';
import { events, stageArtifacts } from '../../schemas/tables';
import { lastJson, serve, sieve, startServer, stopAll, tempHome, waitFor, writeRecipe } from '../cli/helpers';

const home = tempHome('checkpoints');
const store = createArtifactStore(home);
let remote: { TEMPORAL_ADDRESS: string };
let server: ChildProcess;
let worker: ChildProcess;

before(async () => {
  ({ child: server, remote } = await startServer(home));
  worker = serve(home, ['worker'], remote);
});
after(() => stopAll(worker, server));

const show = async (id: string) => JSON.parse((await sieve(home, ['show', id, '--json'])).stdout) as ShowOutput;
const runId = (stdout: string) => lastJson<{ id: string }>(stdout).id;
const dense = (run: ShowOutput) => run.stages.find((s) => s.id === 'dense')!;
const checkpoints = (run: ShowOutput) => dense(run).artifacts.filter((a) => a.role === 'checkpoint').sort((a, b) => b.step! - a.step!);
const model = (run: ShowOutput) => dense(run).artifacts.find((a) => a.role === 'model')!.sha256;
const NOT_OUTPUTS = new Set(['input', 'checkpoint', 'history-segment']);
const intact = (sha256: string) =>
  store.verify(sha256).then(
    () => true,
    (e: unknown) => {
      if (e instanceof ArtifactMissingError || e instanceof ArtifactCorruptError) return false;
      throw e;
    },
  );

/** Training text in a file of its own, so a test can make it vanish. */
const corpus = path.join(home, 'train.txt');
fs.writeFileSync(corpus, loadCorpus({ corpus: 'moby-dick', items: [3, 40] }).text);

function recipe(name: string, stage: string, model = '{ family: gpt2, layers: 2, dim: 64, heads: 4, context: 64, tokenizer: bytes }'): string {
  return writeRecipe(
    home,
    `${name}.yaml`,
    `name: ${name}
seed: 2
model: ${model}
data:
  corpus: files
  train: { paths: [${JSON.stringify(corpus)}] }
  eval:
    tail: { corpus: moby-dick, items: [130, 131] }
stages:
  - { id: dense, kind: pretrain, ${stage} }
  - { id: report, kind: evaluate, from: dense }
`,
  );
}

let cancelled: ShowOutput;
let failedResume: ShowOutput;
let finished: ShowOutput;
let reference: ShowOutput;

test('a damaged newest checkpoint: resume continues from the newest intact one, says so, and never restarts from 0, even resuming a failed resume', { timeout: 300_000 }, async () => {
  const file = recipe('corrupt', 'steps: 500, batch: 16, lr: 3.0e-3, checkpointEvery: 25');
  const runner = sieve(home, ['run', file, '--json'], remote);
  const id = await waitFor('the run', async () => JSON.parse((await sieve(home, ['history', '--json', '--name', 'corrupt'])).stdout).runs[0]?.id as string | undefined);
  await waitFor('pretrain past step 60', async () => {
    const r = await sieve(home, ['status', id, '--json'], remote);
    return r.code === 0 && JSON.parse(r.stdout).stages[0].step >= 60;
  });
  assert.equal((await sieve(home, ['cancel', id], remote)).code, 0);
  assert.notEqual((await runner).code, 0);
  cancelled = await show(id);
  assert.equal(cancelled.status, 'cancelled');
  const [newest, previous] = checkpoints(cancelled);
  assert.ok(newest.step! >= 60 && newest.step! < 500 && previous.step! < newest.step!, `checkpoints at ${checkpoints(cancelled).map((c) => c.step)}`);

  // Damage the newest checkpoint, and take the training text away so that the first resume fails
  // before it writes a checkpoint of its own.
  fs.chmodSync(newest.path, 0o644);
  fs.appendFileSync(newest.path, 'x');
  fs.renameSync(corpus, `${corpus}.away`);
  const first = await sieve(home, ['resume', id, '--json'], remote);
  assert.equal(first.code, 1, first.stderr);
  failedResume = await show(runId(first.stdout));
  assert.equal(failedResume.parentRunId, id);
  assert.deepEqual(failedResume.stages.map((s) => s.status), ['failed', 'skipped']);
  assert.match(dense(failedResume).error ?? '', /train\.txt/);
  assert.deepEqual(checkpoints(failedResume).map((c) => c.sha256), [newest.sha256, previous.sha256], 'the failed resume records the checkpoints it was to start from');

  fs.renameSync(`${corpus}.away`, corpus);
  const second = await sieve(home, ['resume', failedResume.id, '--json'], remote);
  assert.equal(second.code, 0, second.stderr);
  finished = await show(runId(second.stdout));
  assert.deepEqual(finished.stages.map((s) => s.status), ['completed', 'completed']);
  const note = `continued from the checkpoint at step ${previous.step}, the newest intact one: step ${newest.step} (${newest.sha256.slice(0, 12)}) is corrupt: `;
  assert.ok(dense(finished).reason?.includes(note), `sieve show says why: ${dense(finished).reason}`);
  const shown = await sieve(home, ['show', finished.id]);
  assert.ok(shown.stdout.includes(note), 'and the text output shows it');
  const { db, close } = openDb({ home });
  try {
    const resumed = db.select().from(events).where(and(eq(events.runId, finished.id), eq(events.type, 'stage.resumed'))).all();
    assert.deepEqual(resumed.map((e) => e.payload.step), [previous.step]);
    assert.equal(db.select().from(events).where(and(eq(events.runId, finished.id), eq(events.type, 'stage.resume-fallback'))).all().length, 1);
  } finally {
    close();
  }

  const uninterrupted = await sieve(home, ['run', file, '--json', '--no-cache'], remote);
  assert.equal(uninterrupted.code, 0, uninterrupted.stderr);
  reference = await show(runId(uninterrupted.stdout));
  assert.equal(model(finished), model(reference), 'resumed twice, across a damaged checkpoint: the bits of the uninterrupted stage');
  assert.deepEqual(await show(id), cancelled, 'the cancelled run is as it was');
  assert.deepEqual(await show(failedResume.id), failedResume, 'and so is the failed resume');
});

test('checkpoint and history storage grows linearly in steps; keepCheckpoints prunes', { timeout: 120_000 }, async () => {
  const tinyModel = '{ family: gpt2, layers: 1, dim: 4, heads: 1, context: 8, tokenizer: bytes }';
  const stored = async (steps: number) => {
    const r = await sieve(home, ['run', recipe(`linear-${steps}`, `steps: ${steps}, batch: 2, lr: 1.0e-2, checkpointEvery: 5, keepCheckpoints: null`, tinyModel), '--json'], remote);
    assert.equal(r.code, 0, r.stderr);
    const run = await show(runId(r.stdout));
    assert.deepEqual(run.stages.map((s) => s.status), ['completed', 'completed']);
    assert.equal(checkpoints(run).length, steps / 5 - 1, 'keepCheckpoints: null keeps every one');
    const sizes = checkpoints(run).map((c) => c.bytes);
    assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 32, `every checkpoint has the same size, up to the digits of its step numbers: ${sizes}`);
    return dense(run).artifacts.filter((a) => a.role !== 'input').reduce((n, a) => n + a.bytes, 0);
  };
  const [n, twice] = [await stored(150), await stored(300)];
  assert.ok(twice <= 2.2 * n, `${twice} bytes for 300 steps, ${n} for 150: ×${(twice / n).toFixed(2)}`);

  // The uninterrupted run of the first test kept its default two (keepCheckpoints 2) of nineteen.
  const { db, close } = openDb({ home });
  try {
    const run = reference;
    assert.deepEqual(checkpoints(run).map((c) => c.step), [475, 450]);
    const written = db.select().from(events).where(and(eq(events.runId, run.id), eq(events.type, 'stage.checkpoint'))).all().map((e) => e.payload.sha256 as string);
    assert.equal(written.length, 19);
    const gone = [];
    for (const sha256 of written.filter((s) => !checkpoints(run).some((c) => c.sha256 === s))) {
      const linked = db.select().from(stageArtifacts).where(eq(stageArtifacts.sha256, sha256)).all().length > 0;
      assert.equal(fs.existsSync(store.path(sha256)), linked, `a pruned checkpoint's file is deleted exactly when nothing else links it (${sha256})`);
      if (!linked) gone.push(sha256);
    }
    assert.ok(gone.length >= 1, 'at least one pruned file was deleted');
  } finally {
    close();
  }
});

test('gc --dry-run lists what gc deletes: only what nothing needs; finished outputs and resumable checkpoints still verify', { timeout: 120_000 }, async () => {
  const longAgo = new Date(Date.now() - 2 * 3600_000); // beyond gc's grace period of an hour
  const tmp = path.join(home, 'artifacts', 'tmp');
  fs.mkdirSync(path.join(tmp, 'ckpt-old'), { recursive: true });
  fs.writeFileSync(path.join(tmp, 'ckpt-old', 'checkpoint.safetensors'), Buffer.alloc(1000));
  fs.utimesSync(path.join(tmp, 'ckpt-old', 'checkpoint.safetensors'), longAgo, longAgo);
  fs.utimesSync(path.join(tmp, 'ckpt-old'), longAgo, longAgo);
  fs.writeFileSync(path.join(tmp, 'fresh.partial'), Buffer.alloc(10));
  const orphan = await store.put(Buffer.from('an artifact no record names'));
  fs.utimesSync(orphan.path, longAgo, longAgo);
  const young = await store.put(Buffer.from('an artifact being recorded right now'));
  // An extra checkpoint link on a finished run, as a run recorded before keepCheckpoints kept all.
  const extra = await store.put(Buffer.from('a checkpoint from before pruning'));
  const { db, close } = openDb({ home });
  try {
    linkArtifacts(db, [{ runId: reference.id, stageId: 'dense', role: 'checkpoint', step: 1, artifact: { sha256: extra.sha256, bytes: extra.bytes, kind: 'checkpoint' } }]);
  } finally {
    close();
  }

  const runs = (JSON.parse((await sieve(home, ['history', '--json'])).stdout) as { runs: Array<{ id: string }> }).runs;
  const before = await Promise.all(runs.map((r) => show(r.id)));
  const resumable = new Map<string, string>();
  for (const run of before)
    for (const s of run.stages.filter((s) => s.status === 'failed' || s.status === 'cancelled'))
      for (const c of s.artifacts.filter((a) => a.role === 'checkpoint').sort((a, b) => b.step! - a.step!))
        if (await intact(c.sha256)) {
          resumable.set(`${run.id}/${s.id}`, c.sha256);
          break;
        }
  assert.ok(resumable.size >= 2, 'the cancelled run and the failed resume can be resumed');

  const files = () => fs.readdirSync(path.join(home, 'artifacts'), { recursive: true }).sort();
  const untouched = files();
  const dry = await sieve(home, ['gc', '--dry-run', '--json']);
  assert.equal(dry.code, 0, dry.stderr);
  const plan = JSON.parse(dry.stdout) as GcReport;
  const rel = (p: string) => path.relative(home, p);
  assert.deepEqual(plan.pruned, [{ runId: reference.id, stageId: 'dense', step: 1, sha256: extra.sha256 }]);
  assert.deepEqual(plan.deleted.map((f) => f.path).sort(), [rel(extra.path), rel(orphan.path), path.join('artifacts', 'tmp', 'ckpt-old')].sort());
  assert.equal(plan.bytes, extra.bytes + orphan.bytes + 1000);
  assert.deepEqual(plan.deferred.map((f) => f.path).sort(), [rel(young.path), path.join('artifacts', 'tmp', 'fresh.partial')].sort());
  assert.deepEqual(files(), untouched, '--dry-run deletes nothing');
  const text = await sieve(home, ['gc', '--dry-run']);
  assert.ok(text.stdout.includes(`would delete 3 files, ${formatBytes(plan.bytes)}, in ${home}`), text.stdout);

  const real = await sieve(home, ['gc', '--json']);
  assert.equal(real.code, 0, real.stderr);
  const done = JSON.parse(real.stdout) as GcReport;
  assert.deepEqual({ ...done, dryRun: true }, plan, 'gc does what --dry-run listed');
  for (const f of plan.deleted) assert.equal(fs.existsSync(path.join(home, f.path)), false, `${f.path} deleted`);
  for (const f of plan.deferred) assert.equal(fs.existsSync(path.join(home, f.path)), true, `${f.path} kept`);

  for (const run of before) {
    const now = await show(run.id);
    for (const s of now.stages.filter((s) => ['completed', 'cached', 'reused'].includes(s.status)))
      for (const a of s.artifacts.filter((a) => !NOT_OUTPUTS.has(a.role))) await store.verify(a.sha256);
    for (const s of run.stages.filter((s) => s.status !== 'failed' && s.status !== 'cancelled')) {
      assert.deepEqual(now.stages.find((x) => x.id === s.id)!.artifacts.filter((a) => a.sha256 !== extra.sha256), s.artifacts.filter((a) => a.sha256 !== extra.sha256));
    }
  }
  for (const sha256 of resumable.values()) await store.verify(sha256);
  const again = JSON.parse((await sieve(home, ['gc', '--json'])).stdout) as GcReport;
  assert.deepEqual([again.pruned, again.deleted], [[], []], 'a second gc finds nothing more');
});
