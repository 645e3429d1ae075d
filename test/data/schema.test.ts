// The data-source and data-section schemas: what they accept, and the exact one-line
// messages (with paths) they give for what they reject.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { z } from 'zod';

import { DataSection, DataSource, trainSource } from '../../schemas/data';

function errorOf(schema: z.ZodType, input: unknown): string {
  const result = schema.safeParse(input);
  assert.equal(result.success, false, `expected ${JSON.stringify(input)} to be rejected`);
  return z.prettifyError(result.error!);
}

describe('DataSource', () => {
  it('accepts each corpus with and without its selector', () => {
    for (const ok of [
      { corpus: 'sotu' },
      { corpus: 'sotu', years: [1790, 2021] },
      { corpus: 'sotu', years: [2000, 2000] },
      { corpus: 'moby-dick' },
      { corpus: 'moby-dick', items: [0, 138] },
      { corpus: 'files', paths: ['a.txt', 'b.txt'] },
    ]) {
      assert.deepEqual(DataSource.parse(ok), ok);
    }
  });

  it('names the bad bound, the reversed range and the wrong selector', () => {
    assert.equal(errorOf(DataSource, { corpus: 'sotu', years: [1789, 2022] }),
      '✖ years start 1789 is outside 1790–2021\n  → at years[0]\n✖ years end 2022 is outside 1790–2021\n  → at years[1]');
    assert.equal(errorOf(DataSource, { corpus: 'sotu', years: [2001, 2000] }),
      '✖ years range [2001, 2000] is reversed: from must be ≤ to\n  → at years');
    assert.equal(errorOf(DataSource, { corpus: 'sotu', years: [2000] }),
      '✖ expected [from, to]: two integer years (inclusive)\n  → at years');
    assert.equal(errorOf(DataSource, { corpus: 'moby-dick', items: [0, 139] }),
      '✖ item indices end 139 is outside 0–138\n  → at items[1]');
    assert.equal(errorOf(DataSource, { corpus: 'moby-dick', years: [1800, 1850] }),
      '✖ unknown key `years` in a data source: a moby-dick corpus is selected with `items`');
    assert.equal(errorOf(DataSource, { corpus: 'files', paths: [] }), '✖ `paths` needs at least one file\n  → at paths');
    assert.equal(errorOf(DataSource, { corpus: 'wiki' }),
      '✖ expected `corpus` to be one of: sotu, moby-dick, files\n  → at corpus');
  });
});

describe('DataSection', () => {
  const evalSets = { 'sotu-recent': { corpus: 'sotu', years: [2000, 2016] }, 'moby-dick': { corpus: 'moby-dick' } };

  it('accepts the DESIGN.md example and derives the train source', () => {
    const data = DataSection.parse({ corpus: 'sotu', train: { years: [1790, 1999] }, eval: evalSets });
    assert.deepEqual(trainSource(data), { corpus: 'sotu', years: [1790, 1999] });
    const whole = DataSection.parse({ corpus: 'moby-dick', train: {}, eval: evalSets });
    assert.deepEqual(trainSource(whole), { corpus: 'moby-dick' });
  });

  it('rejects a train selector that does not belong to the corpus, at `train`', () => {
    assert.equal(errorOf(DataSection, { corpus: 'sotu', train: { items: [0, 3] }, eval: evalSets }),
      '✖ unknown key `items` in `train`: a sotu corpus is selected with `years`\n  → at train');
    assert.equal(errorOf(DataSection, { corpus: 'files', train: {}, eval: evalSets }),
      '✖ expected `paths`: a list of text file paths\n  → at train.paths');
  });

  it('requires named evaluation sets with plain names', () => {
    assert.equal(errorOf(DataSection, { corpus: 'sotu', train: {}, eval: {} }),
      '✖ `eval` needs at least one named evaluation set\n  → at eval');
    assert.equal(errorOf(DataSection, { corpus: 'sotu', train: {}, eval: { 'a b': { corpus: 'sotu' } } }),
      '✖ evaluation-set name "a b" must use letters, digits, ".", "_" and "-" only\n  → at eval["a b"]');
    assert.equal(errorOf(DataSection, { corpus: 'sotu', train: {}, eval: { x: { corpus: 'sotu', years: [2000, 1990] } } }),
      '✖ years range [2000, 1990] is reversed: from must be ≤ to\n  → at eval.x.years');
  });
});

describe('DataSection shape errors', () => {
  it('says what a missing or mistyped part should be', () => {
    assert.equal(errorOf(DataSection, { corpus: 'sotu', eval: { a: { corpus: 'sotu' } } }),
      '✖ expected `train`: an object with the sotu selector `years`\n  → at train');
    assert.equal(errorOf(DataSection, { corpus: 'sotu', train: {} }),
      '✖ expected `eval`: named evaluation sets, each a data source\n  → at eval');
    assert.equal(errorOf(DataSection, { corpus: 'sotu', train: {}, eval: { a: { corpus: 'sotu' } }, test: 1 }),
      '✖ unknown key `test` in `data`; its keys are corpus, train, eval');
    assert.equal(errorOf(DataSection, 5), '✖ expected `data`: an object with corpus, train and eval');
    assert.equal(errorOf(DataSection, { corpus: 'sotu', train: {}, eval: { a: 'sotu' } }),
      '✖ expected a data source: an object with `corpus` and its selector\n  → at eval.a');
  });
});
