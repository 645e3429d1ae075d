// Tokenizers: byte round-trips of arbitrary UTF-8, GPT-2 BPE against known ids, and
// corpus text containing special-token strings treated as plain text.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { bytesTokenizer, getTokenizer, gpt2Tokenizer } from '../../activities/data/tokenizer';

describe('bytes tokenizer', () => {
  it('round-trips arbitrary UTF-8, one id per byte', () => {
    const samples = ['', 'Hello, world!', 'naïve café — 東京 😀🐋', '\u0000\n\t\r', 'a\u{10FFFF}b', 'x'.repeat(1000)];
    for (const text of samples) {
      const ids = bytesTokenizer.encode(text);
      assert.ok(ids instanceof Int32Array);
      assert.equal(ids.length, Buffer.byteLength(text, 'utf8'));
      assert.equal(bytesTokenizer.decode(ids), text);
    }
    assert.deepEqual([...bytesTokenizer.encode('é')], [0xc3, 0xa9]);
    assert.equal(bytesTokenizer.vocabSize, 256);
  });

  it('round-trips random code points', () => {
    let x = 12345;
    const rand = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
    let text = '';
    while (text.length < 5000) {
      const cp = Math.floor(rand() * 0x110000);
      if (cp >= 0xd800 && cp <= 0xdfff) continue; // lone surrogates are not UTF-8 encodable text
      text += String.fromCodePoint(cp);
    }
    assert.equal(bytesTokenizer.decode(bytesTokenizer.encode(text)), text);
  });

  it('rejects ids outside the vocabulary', () => {
    assert.throws(() => bytesTokenizer.decode([65, 256]), /token id 256 at position 1 is outside the bytes vocabulary \[0, 256\)/);
    assert.throws(() => bytesTokenizer.decode([-1]), /token id -1 at position 0/);
  });
});

describe('gpt2 tokenizer', () => {
  it('encodes known strings to the GPT-2 ids', () => {
    assert.deepEqual([...gpt2Tokenizer.encode('Hello world')], [15496, 995]);
    assert.deepEqual([...gpt2Tokenizer.encode(' the')], [262]);
    assert.equal(gpt2Tokenizer.vocabSize, 50257);
  });

  it('round-trips text, including a literal <|endoftext|> as plain text', () => {
    const text = 'Call me Ishmael. <|endoftext|> 東京 😀\n\n';
    const ids = gpt2Tokenizer.encode(text);
    assert.ok(!ids.includes(50256), 'a corpus string must not become the special token');
    assert.equal(gpt2Tokenizer.decode(ids), text);
  });

  it('rejects ids outside the vocabulary', () => {
    assert.throws(() => gpt2Tokenizer.decode([50257]), /token id 50257 at position 0 is outside the gpt2 vocabulary \[0, 50257\)/);
  });

  it('is found by name', () => {
    assert.equal(getTokenizer('gpt2'), gpt2Tokenizer);
    assert.equal(getTokenizer('bytes'), bytesTokenizer);
    assert.throws(() => getTokenizer('bpe' as never), /unknown tokenizer "bpe": expected one of bytes, gpt2/);
  });
});
