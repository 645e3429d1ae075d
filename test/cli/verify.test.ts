// `sieve verify` through the real CLI on real runs: it passes on untouched history, and catches
// each kind of tampering, each on its own copy of SIEVE_HOME: an edited metric, a deleted event,
// a deleted run, a flipped byte in an artifact, and a run whose journal was rewritten with its
// hashes recomputed (which only the head taken earlier can catch). And provenance bundles: a run
// and the runs it depends on, into a fresh SIEVE_HOME with and without their artifacts, where
// verify and compare work; a tampered bundle imports nothing.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import Database from 'better-sqlite3';

import { DevServer } from '../../cli/temporal/dev-server';
import { canonicalJson } from '../../schemas/canonical';
import type { ImportOutput, VerifyOutput } from '../../schemas/cli';
import { sha256Hex } from '../../activities/store/hash';
import { lastJson, sieve, tempHome, tinyRecipe, writeRecipe } from './helpers';

const home = tempHome('verify');
after(async () => {
  await new DevServer(home).stop();
});

const runs: string[] = [];
let head = '';

async function run(recipe: string): Promise<string> {
  const r = await sieve(home, ['run', recipe, '--json']);
  assert.equal(r.code, 0, r.stderr);
  return lastJson<{ id: string }>(r.stdout).id;
}

before(async () => {
  const a = writeRecipe(home, 'a.yaml', tinyRecipe({ name: 'verify-a', steps: 20 }));
  const b = writeRecipe(home, 'b.yaml', tinyRecipe({ name: 'verify-b', seed: 2, steps: 20 }));
  runs.push(await run(a), await run(b));
  head = (await sieve(home, ['verify', '--head'])).stdout.trim();
  runs.push(await run(a)); // served from the cache: its stages are sealed too
});

/** A copy of SIEVE_HOME's database and artifacts, to tamper with. */
let copies = 0;
function copyHome(): string {
  const copy = tempHome(`verify-copy-${copies++}`);
  fs.copyFileSync(path.join(home, 'sieve.db'), path.join(copy, 'sieve.db'));
  fs.cpSync(path.join(home, 'artifacts'), path.join(copy, 'artifacts'), { recursive: true });
  return copy;
}

function tamper(copy: string, sql: (db: Database.Database) => void) {
  const db = new Database(path.join(copy, 'sieve.db'));
  try {
    db.pragma('foreign_keys = OFF');
    sql(db);
  } finally {
    db.close();
  }
}

async function verify(where: string, args: string[] = []): Promise<{ code: number; out: VerifyOutput }> {
  const r = await sieve(where, ['verify', ...args, '--json']);
  return { code: r.code ?? -1, out: JSON.parse(r.stdout) as VerifyOutput };
}

const problemOf = (out: VerifyOutput, runId: string) => out.runs.find((r) => r.runId === runId)!.problem;

describe('sieve verify', () => {
  it('passes on untouched history, and against a head taken before the last run', async () => {
    const { code, out } = await verify(home, ['--against', head]);
    assert.equal(code, 0, JSON.stringify(out));
    assert.deepEqual(out.runs.map((r) => [r.runId, r.problem]), runs.map((id) => [id, null]));
    for (const r of out.runs) assert.ok(r.checked.stages === 2 && r.checked.artifacts >= 2 && r.checked.events > 4, JSON.stringify(r));
    assert.deepEqual(out.against, { head, problem: null });
    const text = await sieve(home, ['verify', runs[0]]);
    assert.equal(text.code, 0);
    assert.match(text.stdout, new RegExp(`${runs[0]}\\s+ok`));
  });

  it('an edited metric', async () => {
    const copy = copyHome();
    tamper(copy, (db) => db.prepare("UPDATE metrics SET value = value * 0.9 WHERE run_id = ? AND stage_id = 'report' AND step IS NULL AND name LIKE '%/ppl'").run(runs[1]));
    const { code, out } = await verify(copy);
    assert.equal(code, 1);
    assert.match(problemOf(out, runs[1])!, /^stage report: its metrics are not those sealed when it completed/);
    assert.equal(problemOf(out, runs[0]), null);
  });

  it('a deleted event', async () => {
    const copy = copyHome();
    tamper(copy, (db) => db.prepare('DELETE FROM events WHERE id = (SELECT id FROM events WHERE run_id = ? ORDER BY id LIMIT 1 OFFSET 3)').run(runs[1]));
    const { code, out } = await verify(copy, [runs[1]]);
    assert.equal(code, 1);
    assert.match(problemOf(out, runs[1])!, /^event #\d+: its hash does not follow the run's chain/);
  });

  it('a deleted run', async () => {
    const copy = copyHome();
    tamper(copy, (db) => {
      for (const table of ['events', 'metrics', 'stage_artifacts', 'stages', 'runs']) db.prepare(`DELETE FROM ${table} WHERE ${table === 'runs' ? 'id' : 'run_id'} = ?`).run(runs[1]);
    });
    const { code, out } = await verify(copy);
    assert.equal(code, 1);
    assert.equal(problemOf(out, runs[2]), `run ${runs[1]}, created just before this one, is gone from the database: it was deleted`);
  });

  it('a flipped byte in an artifact', async () => {
    const copy = copyHome();
    const db = new Database(path.join(copy, 'sieve.db'), { readonly: true });
    const { sha256, path: rel } = db.prepare("SELECT a.sha256, a.path FROM artifacts a JOIN stage_artifacts l ON l.sha256 = a.sha256 WHERE l.run_id = ? AND l.role = 'report'").get(runs[1]) as { sha256: string; path: string };
    db.close();
    const file = path.join(copy, rel);
    fs.chmodSync(file, 0o600);
    const bytes = fs.readFileSync(file);
    bytes[10] ^= 1;
    fs.writeFileSync(file, bytes);
    const { code, out } = await verify(copy, [runs[1]]);
    assert.equal(code, 1);
    assert.equal(problemOf(out, runs[1]), `artifact ${sha256} (report of stage report): its bytes no longer hash to its name`);
  });

  it('a journal rewritten with its hashes recomputed passes the chain, but not the head taken before', async () => {
    const copy = copyHome();
    tamper(copy, (db) => {
      // rewrite run 1's story (a stage's reason) and re-chain every later event of that run
      const rows = db.prepare('SELECT id, stage_id, type, payload, at, hash FROM events WHERE run_id = ? ORDER BY id').all(runs[1]) as { id: number; stage_id: string | null; type: string; payload: string; at: number; hash: string }[];
      let previous: string | null = null;
      let rewritten = false;
      for (const row of rows) {
        let payload = JSON.parse(row.payload) as Record<string, unknown>;
        if (!rewritten && row.type === 'stage.running') {
          payload = { ...payload, reason: 'cache disabled (--no-cache)' };
          rewritten = true;
        }
        const hash = sha256Hex(`${previous ?? ''}\n${canonicalJson({ runId: runs[1], stageId: row.stage_id, type: row.type, payload, at: row.at })}`);
        db.prepare('UPDATE events SET payload = ?, hash = ? WHERE id = ?').run(canonicalJson(payload), hash, row.id);
        previous = hash;
      }
      assert.ok(rewritten);
    });
    const plain = await verify(copy);
    assert.equal(plain.code, 0, 'every chain is consistent again');
    const { code, out } = await verify(copy, ['--against', head]);
    assert.equal(code, 1);
    assert.match(out.against!.problem!, /^the journal up to event #\d+ is not the one the head was taken from/);
    assert.ok(out.runs.every((r) => r.problem === null));
  });

  it('refuses an unknown run and a malformed head', async () => {
    const unknown = await sieve(home, ['verify', 'no-such-run']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /no run "no-such-run"/);
    const bad = await sieve(home, ['verify', '--against', 'abc']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /"abc" is not a head printed by `sieve verify --head`/);
  });
});

describe('provenance bundles', () => {
  const bundleOf = async (runId: string, name: string, withArtifacts: boolean) => {
    const file = path.join(home, name);
    const r = await sieve(home, ['show', runId, '--bundle', file, ...(withArtifacts ? ['--with-artifacts'] : []), '--json']);
    assert.equal(r.code, 0, r.stderr);
    return file;
  };
  const importInto = async (where: string, file: string) => {
    const r = await sieve(where, ['import', file, '--json']);
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  };

  it('a run and the run whose stages it reused travel with their artifacts: verify and compare work there', async () => {
    const file = await bundleOf(runs[2], 'run2.bundle', true);
    const there = tempHome('verify-import');
    const r = await importInto(there, file);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as ImportOutput;
    assert.deepEqual(out.imported, [runs[0], runs[2]], 'the cached run brings the run that computed its stages');
    assert.ok(out.files >= 3);
    const { code, out: verified } = await verify(there);
    assert.equal(code, 0, JSON.stringify(verified));
    assert.ok(verified.runs.every((v) => v.problem === null && v.checked.absent === 0 && v.checked.artifacts > 0));
    const compare = await sieve(there, ['compare', runs[0], runs[2], '--json']);
    assert.equal(compare.code, 0, compare.stderr);
    const shown = JSON.parse((await sieve(there, ['show', runs[2], '--json'])).stdout) as { stages: { id: string; metrics: Record<string, number> }[] };
    const here = JSON.parse((await sieve(home, ['show', runs[2], '--json'])).stdout) as typeof shown;
    assert.deepEqual(shown.stages.map((s) => s.metrics), here.stages.map((s) => s.metrics));
    const again = JSON.parse((await importInto(there, file)).stdout) as ImportOutput;
    assert.deepEqual([again.imported, again.present], [[], [runs[0], runs[2]]], 'importing twice changes nothing');
  });

  it('without artifacts: the history verifies, the files are reported absent', async () => {
    const there = tempHome('verify-import-light');
    assert.equal((await importInto(there, await bundleOf(runs[1], 'run1.bundle', false))).code, 0);
    const { code, out } = await verify(there);
    assert.equal(code, 0, JSON.stringify(out));
    assert.ok(out.runs[0].checked.absent > 0 && out.runs[0].checked.artifacts === 0);
  });

  it('a tampered bundle imports nothing', async () => {
    const file = await bundleOf(runs[1], 'tampered.bundle', false);
    const bundle = JSON.parse(gunzipSync(fs.readFileSync(file)).toString('utf8')) as { metrics: { name: string; value: number; step: number | null }[] };
    const ppl = bundle.metrics.find((m) => m.name.endsWith('/ppl') && m.step === null)!;
    ppl.value *= 0.9;
    fs.writeFileSync(file, gzipSync(Buffer.from(JSON.stringify(bundle))));
    const there = tempHome('verify-import-tampered');
    const r = await importInto(there, file);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`the bundle's history does not verify, so nothing was imported: run ${runs[1]}: stage report: its metrics are not those sealed`));
    assert.match((await sieve(there, ['history'])).stdout, /no runs recorded yet/);
  });
});
