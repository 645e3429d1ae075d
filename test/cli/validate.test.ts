// Bad input at the edge: every malformed recipe is refused by `sieve validate` and `sieve run`
// with a non-zero exit, a message naming the culprit, and nothing written to SIEVE_HOME.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { sieveSync, tempHome, tinyRecipe, writeRecipe } from './helpers';

const dir = tempHome('bad-recipes');
const good = tinyRecipe();

const cases: Array<{ name: string; text: string; culprit: RegExp }> = [
  { name: 'unknown-key.yaml', text: good.replace('lr: 3.0e-3', 'lr: 3.0e-3, lrr: 1'), culprit: /stages\[0\]\.lrr/ },
  { name: 'wrong-type.yaml', text: good.replace('steps: 40', 'steps: forty'), culprit: /stages\[0\]\.steps/ },
  { name: 'cycle.yaml', text: good.replace('kind: pretrain,', 'kind: pretrain, from: again,') + '  - { id: again, kind: pretrain, from: dense, steps: 1, batch: 8, lr: 1.0e-3 }\n', culprit: /cycle.*dense → again → dense|cycle.*again → dense → again/ },
  { name: 'dangling.yaml', text: good.replace('from: dense', 'from: densse'), culprit: /stages\[1\]\.from/ },
  { name: 'unknown-kind.yaml', text: good.replace('kind: evaluate', 'kind: distill'), culprit: /unknown stage kind "distill"/ },
  { name: 'syntax.yaml', text: good.replace('stages:', 'stages: [\n'), culprit: /syntax\.yaml:\d+:\d+/ },
  { name: 'missing-file.yaml', text: tinyRecipe({ evalFile: path.join(dir, 'nope.txt') }), culprit: /nope\.txt/ },
];

for (const c of cases) {
  test(`malformed recipe (${c.name}) is refused by validate and run, writing nothing`, () => {
    const file = writeRecipe(dir, c.name, c.text);
    const home = tempHome('bad-home');
    for (const command of ['validate', 'run']) {
      const r = sieveSync(home, [command, file]);
      assert.notEqual(r.code, 0, `${command} must fail`);
      assert.match(r.stderr, c.culprit, `${command} names the culprit`);
      assert.equal(r.stdout, '');
    }
    assert.deepEqual(fs.readdirSync(home), [], 'SIEVE_HOME stays empty: no database, no server, no artifacts');
  });
}

test('a valid recipe validates with a one-line summary', () => {
  const r = sieveSync(tempHome('ok'), ['validate', writeRecipe(dir, 'good.yaml', good)]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /valid recipe "tiny".*dense → report/);
});

test('sieve schema prints the JSON Schema of the recipe', () => {
  const r = sieveSync(tempHome('schema'), ['schema']);
  assert.equal(r.code, 0);
  const schema = JSON.parse(r.stdout);
  assert.match(JSON.stringify(schema), /"pretrain"/);
});

test('an unknown command and an unknown flag are usage errors (exit 2)', () => {
  const home = tempHome('usage');
  const a = sieveSync(home, ['rnu']);
  assert.equal(a.code, 2);
  assert.match(a.stderr, /did you mean "run"/);
  const b = sieveSync(home, ['history', '--colour']);
  assert.equal(b.code, 2);
  assert.match(b.stderr, /--colour/);
});
