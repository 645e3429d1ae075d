// The README's quickstart command, exactly as a new user types it (`npm run quickstart`), in a
// fresh SIEVE_HOME: the embedded dev server starts, examples/quickstart.yaml trains and evaluates,
// everything lands in SQLite, and the model has learned something about the language.
// (`sieve reproduce` of a whole run is checked on a smaller recipe in reproduce.test.ts: a second
// quickstart would double this test's minutes.)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { loadCorpus } from '../../activities/data/corpus';
import type { ShowOutput } from '../../schemas/cli';
import { DevServer } from '../../cli/temporal/dev-server';
import { sieve, tempHome } from './helpers';

const ROOT = path.resolve(__dirname, '..', '..');

/** Perplexity of the best byte-unigram model of `text` (fitted on the text itself). */
function unigramPerplexity(text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  const counts = new Array<number>(256).fill(0);
  for (const b of bytes) counts[b]++;
  const entropy = counts.reduce((h, c) => (c === 0 ? h : h - (c / bytes.length) * Math.log(c / bytes.length)), 0);
  return Math.exp(entropy);
}

test('npm run quickstart runs examples/quickstart.yaml end to end: the model learned the language, all of it recorded', { timeout: 1_800_000 }, async () => {
  const home = tempHome('quickstart');
  try {
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn('npm', ['run', '--silent', 'quickstart'], { cwd: ROOT, env: { ...process.env, SIEVE_HOME: home, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      child.on('close', (code) => resolve({ code, out }));
    });
    assert.equal(r.code, 0, r.out);
    const id = /^(quickstart-[0-9a-f]{8}): completed$/m.exec(r.out)?.[1];
    assert.ok(id, `the summary names the run:\n${r.out}`);
    assert.equal(new DevServer(home).record(), null, 'the embedded server was shut down with the run');

    const run = JSON.parse((await sieve(home, ['show', id, '--json'])).stdout) as ShowOutput;
    assert.deepEqual(run.stages.map((s) => [s.id, s.status]), [['dense', 'completed'], ['report', 'completed']]);
    const [dense, report] = run.stages;
    assert.equal(dense.step, 800);
    // A checkpoint every 100 steps; the newest two are kept, the final model is the output.
    assert.deepEqual(dense.artifacts.filter((a) => a.role === 'checkpoint').map((a) => a.step), [600, 700]);

    const recent = report.metrics['dense/sotu-recent/ppl']!;
    const moby = report.metrics['dense/moby-dick/ppl']!;
    const unigram = unigramPerplexity(loadCorpus({ corpus: 'sotu', years: [2000, 2016] }).text);
    assert.ok(recent < unigram / 2, `held-out speeches: perplexity ${recent} well below the byte-unigram ${unigram}`);
    assert.ok(moby > recent, `another author and century is harder (${moby} vs ${recent})`);
  } finally {
    await new DevServer(home).stop();
  }
});
