// Hugging Face tokenizer.json files: two small ones written here — a byte-level BPE like GPT-2's and
// a sentencepiece-style BPE like LLaMA's ("▁" for spaces, byte fallback, a post-processor that adds
// <s>) — give the ids worked out by hand from their merges, add no special tokens, treat special-
// token strings in the text as plain text, round-trip, and fail clearly on bad files and ids.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import { loadTokenizerFile } from '../../activities/data/hf-tokenizer';
import { byteLevelTokenizer, mergeVocab } from '../kernels/hf/helpers';

const dir = mkdtempSync(join(tmpdir(), 'sieve-hf-tokenizer-'));

function writeJson(name: string, json: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof json === 'string' ? json : JSON.stringify(json));
  return path;
}

// Byte-level BPE: ids 0–255 are the bytes (id = byte value), then one id per merge, then <|endoftext|>.
const BYTE_MERGES = ['h e', 'l l', 'he ll', 'hell o', 'Ġ w', 'o r', 'Ġw or', 'l d', 'Ġwor ld'];
const HELLO = 259;
const SPACE_WORLD = 264;
const OR = 261;
const LD = 263;
const END_OF_TEXT = 265;
const byteLevelJson = byteLevelTokenizer(BYTE_MERGES);

// Sentencepiece-style BPE: <unk> <s> </s>, the 256 byte tokens <0x00>…<0xFF> (id = 3 + byte), "▁",
// seven letters, then one id per merge.
const SP_LETTERS = ['▁', 'h', 'e', 'l', 'o', 'w', 'r', 'd'];
const SP_MERGES = ['▁ h', 'e l', '▁h el', 'l o', '▁hel lo', '▁ w', 'o r', '▁w or', '▁wor l', '▁worl d'];
const byte = (b: number) => 3 + b;
const SP = { space: 259, h: 260, spaceH: 267, spaceHello: 271, spaceWorld: 276 };
const sentencepieceJson = {
  version: '1.0',
  added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
  normalizer: {
    type: 'Sequence',
    normalizers: [
      { type: 'Prepend', prepend: '▁' },
      { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
    ],
  },
  pre_tokenizer: null,
  post_processor: {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
  },
  decoder: {
    type: 'Sequence',
    decoders: [
      { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
      { type: 'ByteFallback' },
      { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 },
    ],
  },
  model: {
    type: 'BPE',
    dropout: null,
    unk_token: '<unk>',
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: true,
    byte_fallback: true,
    vocab: {
      '<unk>': 0,
      '<s>': 1,
      '</s>': 2,
      ...Object.fromEntries(Array.from({ length: 256 }, (_, b) => [`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`, byte(b)])),
      ...Object.fromEntries(SP_LETTERS.map((c, i) => [c, 259 + i])),
      ...mergeVocab(SP_MERGES, 267),
    },
    merges: SP_MERGES,
  },
};

describe('loadTokenizerFile: byte-level BPE (GPT-2 style)', () => {
  const tokenizer = loadTokenizerFile(writeJson('byte-level.json', byteLevelJson));

  it('encodes to the ids the merges give', () => {
    assert.equal(tokenizer.vocabSize, 266, '256 bytes + 9 merges + <|endoftext|>');
    const ids = tokenizer.encode('hello world');
    assert.ok(ids instanceof Int32Array);
    assert.deepEqual([...ids], [HELLO, SPACE_WORLD]);
    // No rank joins "h o" or "w o": only "l d" and "o r" apply.
    assert.deepEqual([...tokenizer.encode('hold')], [0x68, 0x6f, LD]);
    assert.deepEqual([...tokenizer.encode('world')], [0x77, OR, LD]);
    assert.deepEqual([...tokenizer.encode('é')], [0xc3, 0xa9]);
    assert.deepEqual([...tokenizer.encode('')], []);
  });

  it('encodes a literal <|endoftext|> as its bytes, not as the special token', () => {
    const text = 'a<|endoftext|>b';
    assert.deepEqual([...tokenizer.encode(text)], [...Buffer.from(text, 'utf8')]);
    assert.equal(tokenizer.decode([END_OF_TEXT]), '<|endoftext|>', 'the special id itself still decodes');
  });

  it('round-trips text, spaces before punctuation included', () => {
    for (const text of ['hello world', 'hello , world .  \n\ttabs', 'naïve café — 東京 😀', 'x <|endoftext|> y']) {
      assert.equal(tokenizer.decode(tokenizer.encode(text)), text);
    }
    assert.equal(tokenizer.decode([]), '');
  });

  it('rejects ids outside the vocabulary', () => {
    assert.throws(() => tokenizer.decode([HELLO, 266]), { message: `token id 266 at position 1 is outside the vocabulary of ${tokenizer.name} (266 ids)` });
    assert.throws(() => tokenizer.decode([-1]), /token id -1 at position 0 is outside/);
    assert.throws(() => tokenizer.decode([1.5]), /token id 1.5 at position 0 is outside/);
  });
});

describe('loadTokenizerFile: sentencepiece-style BPE (LLaMA style)', () => {
  const tokenizer = loadTokenizerFile(writeJson('sentencepiece.json', sentencepieceJson));

  it('encodes with "▁" for spaces, merges across the whole text, bytes for what the vocabulary lacks, and no <s>', () => {
    assert.equal(tokenizer.vocabSize, 277);
    assert.deepEqual([...tokenizer.encode('hello world')], [SP.spaceHello, SP.spaceWorld]);
    // "é" is not a token: its UTF-8 bytes C3 A9 fall back to <0xC3> <0xA9>.
    assert.deepEqual([...tokenizer.encode('hé')], [SP.spaceH, byte(0xc3), byte(0xa9)]);
  });

  it('encodes a literal <s> as text', () => {
    assert.deepEqual([...tokenizer.encode('<s>hi')], [SP.space, byte(0x3c), byte(0x73), byte(0x3e), SP.h, byte(0x69)]);
  });

  it('round-trips text', () => {
    for (const text of ['hello world', 'hé, world!', '  two leading spaces', 'emoji 😀 and </s> and <unk>']) {
      assert.equal(tokenizer.decode(tokenizer.encode(text)), text);
    }
  });
});

describe('loadTokenizerFile: errors', () => {
  it('names a missing file, invalid JSON and a file the library cannot load', () => {
    const missing = join(dir, 'absent.json');
    assert.throws(() => loadTokenizerFile(missing), { message: `cannot read the tokenizer file ${missing} (ENOENT)` });
    const invalid = writeJson('invalid.json', '{"model": ');
    assert.throws(() => loadTokenizerFile(invalid), (err: Error) => err.message.startsWith(`the tokenizer file ${invalid} is not valid JSON (`));
    const notObject = writeJson('list.json', []);
    assert.throws(() => loadTokenizerFile(notObject), { message: `the tokenizer file ${notObject} is not a JSON object` });
    const noModel = writeJson('no-model.json', { added_tokens: [] });
    assert.throws(() => loadTokenizerFile(noModel), (err: Error) => err.message.startsWith(`the tokenizer file ${noModel} cannot be loaded: `));
  });
});
