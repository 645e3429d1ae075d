// Splits: the DESIGN.md data section resolved into train and eval streams with hashes,
// determinism, overlap warnings, and too-short streams rejected with their recipe path.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { loadCorpus } from '../../activities/data/corpus';
import { resolveData } from '../../activities/data/splits';
import { DataSection } from '../../schemas/data';

describe('resolveData', () => {
  const section = DataSection.parse({
    corpus: 'sotu',
    train: { years: [1990, 1999] },
    eval: { 'sotu-recent': { corpus: 'sotu', years: [2000, 2016] }, 'moby-dick': { corpus: 'moby-dick' } },
  });

  it('resolves the train split and named eval sets with the hash of their text', () => {
    const data = resolveData(section, { tokenizer: 'bytes', context: 128 });
    assert.deepEqual(data.train.info.source, { corpus: 'sotu', years: [1990, 1999] });
    assert.equal(data.train.info.name, 'train');
    assert.equal(data.train.info.sha256, loadCorpus({ corpus: 'sotu', years: [1990, 1999] }).sha256);
    assert.equal(data.train.info.tokens, data.train.tokens.length);
    assert.equal(data.train.info.tokens, data.train.info.bytes, 'byte tokenizer: one token per byte');
    assert.deepEqual(data.eval.map((e) => e.info.name), ['sotu-recent', 'moby-dick']);
    assert.equal(data.eval[1].info.sha256, '0af9935b7dafb3ff9372c56280169829e57de675829b6697f902d9331a136114');
    assert.deepEqual(data.warnings, []);
  });

  it('is deterministic', () => {
    const a = resolveData(section, { tokenizer: 'gpt2', context: 64 });
    const b = resolveData(section, { tokenizer: 'gpt2', context: 64 });
    assert.deepEqual(a.train.info, b.train.info);
    assert.deepEqual(a.train.tokens, b.train.tokens);
    assert.equal(a.train.info.tokenizer, 'gpt2');
  });

  it('warns when an eval set shares text with the train split', () => {
    const overlapping = DataSection.parse({
      corpus: 'moby-dick',
      train: { items: [0, 100] },
      eval: { tail: { corpus: 'moby-dick', items: [100, 138] }, held: { corpus: 'moby-dick', items: [101, 138] } },
    });
    const data = resolveData(overlapping, { tokenizer: 'bytes', context: 64 });
    assert.deepEqual(data.warnings, ['data.eval.tail shares text with the train split, so its perplexity is not held-out']);
  });

  it('rejects streams too short for one window, naming the recipe path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sieve-splits-'));
    writeFileSync(join(dir, 'short.txt'), 'x'.repeat(64));
    const tooShortTrain = DataSection.parse({ corpus: 'files', train: { paths: ['short.txt'] }, eval: { m: { corpus: 'moby-dick' } } });
    assert.throws(() => resolveData(tooShortTrain, { tokenizer: 'bytes', context: 64, baseDir: dir }), {
      message: 'data.train (files (1): 1 file, 64 bytes) gives 64 tokens with the bytes tokenizer, fewer than one training window of context + 1 = 65 tokens',
    });
    const tooShortEval = DataSection.parse({
      corpus: 'moby-dick',
      train: {},
      eval: { short: { corpus: 'files', paths: [join(dir, 'short.txt')] } },
    });
    assert.throws(() => resolveData(tooShortEval, { tokenizer: 'bytes', context: 65 }), {
      message: 'data.eval.short (files (1): 1 file, 64 bytes) gives 64 tokens with the bytes tokenizer, fewer than one perplexity window of context = 65 tokens',
    });
  });
});
