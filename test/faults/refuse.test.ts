// Refuse before queueing: recipes that cannot run are refused by `validate` and `run` at once,
// with one message naming the culprit (and the numbers), a non-zero exit, nothing written to
// SIEVE_HOME, and with `--json` the documented error shapes (schemas/cli.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { ErrorOutput, ValidateOutput } from '../../schemas/cli';
import { sieveSync, tempHome, tinyRecipe, writeRecipe } from '../cli/helpers';

const dir = tempHome('refuse');
const good = tinyRecipe();

const cases: Array<{ name: string; text: string; culprit: RegExp; path: string }> = [
  {
    name: 'layers beyond the engine',
    text: good.replace('layers: 1,', 'layers: 1000000,'),
    culprit: /`layers` must be at most 4096, the engine's limit/,
    path: 'model.layers',
  },
  {
    name: 'too many parameters',
    text: good.replace('dim: 32,', 'dim: 65536,'),
    culprit: /would have [\d,]+ parameters; the engine holds at most 2,147,483,647/,
    path: 'model.layers',
  },
  {
    name: 'a batch beyond memory',
    text: good.replace('batch: 8,', 'batch: 1000000000,'),
    culprit: /stage dense needs about [\d.]+ [KMGTPE]iB of memory \(weights .*activations for 1000000000 × 32 tokens per micro-batch .*\), but this machine has/,
    path: 'stages[0]',
  },
  {
    name: 'a learning rate float32 cannot hold',
    text: good.replace('lr: 3.0e-3', 'lr: 1.0e+300, weightDecay: 0'),
    culprit: /`lr` 1e\+300 is not a float32 number/,
    path: 'stages[0].lr',
  },
  {
    name: 'a decay step that flips every weight',
    text: good.replace('lr: 3.0e-3', 'lr: 20'),
    culprit: /lr · weightDecay = 2 must be below 1/,
    path: 'stages[0].weightDecay',
  },
];

for (const c of cases) {
  test(`${c.name} is refused before anything is queued`, () => {
    const file = writeRecipe(dir, `${c.name.replace(/\W+/g, '-')}.yaml`, c.text);
    const home = tempHome('refuse-home');
    for (const command of ['validate', 'run']) {
      const r = sieveSync(home, [command, file]);
      assert.equal(r.code, 1, `${command} exits 1: ${r.stderr}`);
      assert.match(r.stderr, c.culprit);
    }
    const json = sieveSync(home, ['validate', file, '--json']);
    assert.equal(json.code, 1);
    const out = ValidateOutput.parse(JSON.parse(json.stdout));
    assert.ok(!out.ok && out.issues.some((i) => i.path === c.path && c.culprit.test(i.message)), json.stdout);
    const run = sieveSync(home, ['run', file, '--json']);
    const error = ErrorOutput.parse(JSON.parse(run.stdout)).error;
    assert.equal(error.code, 'invalid-recipe');
    assert.equal(error.path, c.path);
    assert.deepEqual(fs.readdirSync(home), [], 'nothing is written to SIEVE_HOME');
  });
}

test('corpus paths that are not regular files are refused without reading them', () => {
  const fifo = path.join(dir, 'corpus.fifo');
  const made = spawnSync('mkfifo', [fifo]);
  const sources: Array<[string, RegExp]> = [
    ['/dev/zero', /corpus file \/dev\/zero is not a regular file \(it is a device\)/],
    [dir, /is not a regular file \(it is a directory\)/],
  ];
  if (made.status === 0) sources.push([fifo, /corpus\.fifo is not a regular file \(it is a FIFO\)/]);
  for (const [source, culprit] of sources) {
    const file = writeRecipe(dir, 'irregular.yaml', tinyRecipe({ evalFile: source }));
    // A FIFO would block the read and /dev/zero never ends: the timeout makes a regression fail, not hang.
    const r = spawnSync(process.execPath, [path.resolve(__dirname, '../../cli/sieve.js'), 'validate', file], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, SIEVE_HOME: tempHome('irregular') } });
    assert.equal(r.status, 1, `${source}: ${r.stderr}`);
    assert.match(r.stderr, culprit);
  }
});

test('a recipe file over the size cap, or not a regular file, is refused unread', () => {
  const big = writeRecipe(dir, 'big.yaml', `${good}\n# ${'x'.repeat(2 << 20)}\n`);
  const r = sieveSync(tempHome('big'), ['validate', big]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /recipe file .*big\.yaml is [\d,]+ bytes; a recipe is at most 1 MiB/);
  const d = sieveSync(tempHome('dir'), ['validate', dir]);
  assert.equal(d.code, 1);
  assert.match(d.stderr, /is not a regular file/);
});

test('--heartbeat-timeout below two seconds is a usage error', () => {
  const file = writeRecipe(dir, 'hb.yaml', good);
  const r = sieveSync(tempHome('hb'), ['run', file, '--heartbeat-timeout', '0.001', '--json']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--heartbeat-timeout must be a number of at least 2, got "0.001"/);
  assert.equal(ErrorOutput.parse(JSON.parse(r.stdout)).error.code, 'usage');
});

test('validate --json of a good recipe has the documented shape', () => {
  const r = sieveSync(tempHome('vjson'), ['validate', writeRecipe(dir, 'good.yaml', good), '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = ValidateOutput.parse(JSON.parse(r.stdout));
  assert.ok(out.ok);
  assert.deepEqual(out.order, ['dense', 'report']);
  assert.match(out.hash, /^[0-9a-f]{64}$/);
});

test('--json errors of other commands have the documented shape', () => {
  const home = tempHome('json-errors');
  const missing = sieveSync(home, ['show', 'no-such-run', '--json']);
  assert.equal(missing.code, 1);
  assert.deepEqual(ErrorOutput.parse(JSON.parse(missing.stdout)).error.code, 'not-found');
  const usage = sieveSync(home, ['history', '--limit', 'x', '--json']);
  assert.equal(usage.code, 2);
  assert.equal(ErrorOutput.parse(JSON.parse(usage.stdout)).error.code, 'usage');
});
