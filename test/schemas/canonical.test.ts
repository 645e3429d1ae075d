// Canonical JSON: the byte string every recorded hash is computed over.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { canonicalJson } from '../../schemas/canonical';

describe('canonicalJson', () => {
  it('sorts keys at every depth and leaves no whitespace', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' } }), '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}');
  });

  it('is independent of key insertion order', () => {
    assert.equal(canonicalJson({ lr: 0.003, steps: 300 }), canonicalJson({ steps: 300, lr: 0.003 }));
  });

  it('leaves out undefined members, like JSON', () => {
    assert.equal(canonicalJson({ a: undefined, b: null }), '{"b":null}');
  });

  it('writes numbers in their shortest round-trip form', () => {
    assert.equal(canonicalJson([1e-8, 3.0e-3, -0, 100, 1e21]), '[1e-8,0.003,0,100,1e+21]');
  });

  it('uses toJSON (dates)', () => {
    assert.equal(canonicalJson({ at: new Date(0) }), '{"at":"1970-01-01T00:00:00.000Z"}');
  });

  it('refuses what JSON cannot carry faithfully, naming the path', () => {
    assert.throws(() => canonicalJson({ a: [1, Number.NaN] }), /\$\.a\[1\] is NaN/);
    assert.throws(() => canonicalJson({ a: Infinity }), /\$\.a is Infinity/);
    assert.throws(() => canonicalJson({ a: 1n }), /\$\.a is a bigint/);
    assert.throws(() => canonicalJson([undefined]), /\$\[0\] is undefined/);
    assert.throws(() => canonicalJson({ m: new Map() }), /\$\.m is a Map, not a plain object/);
  });
});
