// The model section: shapes the engine or a later 2:4 stage cannot handle are rejected
// before anything runs, each at the key to change.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { z } from 'zod';

import { hiddenDim, Model } from '../../schemas/model';

const base = { layers: 2, dim: 64, heads: 4, context: 64, tokenizer: 'bytes' };

function errorOf(input: unknown): string {
  const result = Model.safeParse(input);
  assert.equal(result.success, false, `expected ${JSON.stringify(input)} to be rejected`);
  return z.prettifyError(result.error!);
}

describe('Model', () => {
  it('fills in family and mlpRatio', () => {
    const model = Model.parse(base);
    assert.deepEqual(model, { ...base, family: 'gpt2', mlpRatio: 4, normEps: 1e-5 });
    assert.equal(hiddenDim(model), 256);
  });

  it('accepts a llama with a fractional ratio that gives a whole hidden width', () => {
    const model = Model.parse({ ...base, family: 'llama', dim: 96, heads: 4, mlpRatio: 8 / 3 });
    assert.equal(hiddenDim(model), 256);
  });

  it('heads must divide dim', () => {
    assert.equal(errorOf({ ...base, heads: 3 }), '✖ `heads` (3) must divide `dim` (64)\n  → at heads');
  });

  it('a llama head width must be even (RoPE)', () => {
    assert.equal(
      errorOf({ ...base, family: 'llama', dim: 36, heads: 4 }),
      "✖ a llama head's width dim/heads = 9 must be even: RoPE rotates pairs of channels\n  → at heads",
    );
  });

  it('dim and the hidden width must divide by 4 for 2:4', () => {
    assert.match(errorOf({ ...base, dim: 66, heads: 2 }), /`dim` \(66\) must be divisible by 4[^]*→ at dim/);
    assert.match(errorOf({ ...base, mlpRatio: 2.5, dim: 36 }), /hidden width mlpRatio · dim = 90 must be divisible by 4[^]*→ at mlpRatio/);
    assert.equal(hiddenDim(Model.parse({ ...base, mlpRatio: 3 })), 192);
    assert.match(errorOf({ ...base, mlpRatio: 1.01 }), /must be a whole number\n  → at mlpRatio/);
  });

  it('positive integers, a real context, a known tokenizer, no unknown keys', () => {
    assert.match(errorOf({ ...base, layers: 0 }), /`layers` must be at least 1\n  → at layers/);
    assert.match(errorOf({ ...base, dim: 64.5 }), /expected `dim` \(the residual width\): a whole number/);
    assert.match(errorOf({ ...base, context: 1 }), /`context` must be at least 2/);
    assert.match(errorOf({ ...base, tokenizer: 'sentencepiece' }), /→ at tokenizer/);
    assert.match(errorOf({ ...base, vocabulary: 256 }), /unknown key `vocabulary` in `model`/);
  });

  it('vocab, normEps and ropeTheta: a vocabulary at least the tokenizer\'s, RoPE only for llama', () => {
    assert.equal(Model.parse({ ...base, vocab: 320 }).vocab, 320);
    assert.match(errorOf({ ...base, vocab: 200 }), /`vocab` \(200\) is smaller than the tokenizer's vocabulary \(256\)[^]*→ at vocab/);
    assert.match(errorOf({ ...base, ropeTheta: 500 }), /`ropeTheta` is for the llama family[^]*→ at ropeTheta/);
    assert.equal(Model.parse({ ...base, family: 'llama', ropeTheta: 500, normEps: 1e-6 }).ropeTheta, 500);
    assert.match(errorOf({ ...base, normEps: 0 }), /`normEps` must be positive/);
  });

  it('a tokenizer file: a path, with the sha256 and vocabulary sieve fills in', () => {
    const tokenizer = { file: '/x/tokenizer.json', sha256: 'a'.repeat(64), vocab: 1000 };
    assert.deepEqual(Model.parse({ ...base, tokenizer }).tokenizer, tokenizer);
    assert.match(errorOf({ ...base, tokenizer: { file: '/x', bogus: 1 } }), /unknown key `bogus` in a tokenizer file/);
    assert.match(errorOf({ ...base, tokenizer: { file: '/x', sha256: 'nothex' } }), /expected a lowercase hex sha256/);
    assert.match(errorOf({ ...base, tokenizer: 3 }), /expected `tokenizer`: "bytes", "gpt2", or \{ file/);
  });
});
