// Half precision by bits: every half round-trips through float32 exactly; float32 → half rounds to
// nearest with ties to even, overflows to infinity, underflows through the subnormals to zero.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { f16Bits, f16ToNumber } from '../../kernels/half';

describe('half precision', () => {
  it('every one of the 65,536 halves round-trips exactly (NaNs stay NaN)', () => {
    for (let h = 0; h < 0x10000; h++) {
      const x = f16ToNumber(h);
      if (Number.isNaN(x)) assert.ok(Number.isNaN(f16ToNumber(f16Bits(x))), `0x${h.toString(16)}`);
      else assert.equal(f16Bits(x), h, `0x${h.toString(16)} (${x})`);
    }
  });

  it('rounds to nearest, ties to even, and saturates to infinity', () => {
    assert.equal(f16ToNumber(f16Bits(1 + 2 ** -11)), 1, 'halfway between 1 and 1 + 2^-10 goes to the even 1');
    assert.equal(f16ToNumber(f16Bits(1 + 3 * 2 ** -11)), 1 + 2 * 2 ** -10, 'halfway to an odd neighbour goes up to the even one');
    assert.equal(f16ToNumber(f16Bits(1 + 2 ** -11 + 2 ** -20)), 1 + 2 ** -10, 'past halfway rounds up');
    assert.equal(f16ToNumber(f16Bits(0.1)), 0.0999755859375);
    assert.equal(f16ToNumber(f16Bits(65504)), 65504);
    assert.equal(f16ToNumber(f16Bits(65520)), Infinity, 'halfway past the largest half rounds to infinity');
    assert.equal(f16ToNumber(f16Bits(-1e6)), -Infinity);
    assert.equal(f16ToNumber(f16Bits(2 ** -25)), 0, 'exactly half the smallest subnormal ties to 0');
    assert.equal(f16ToNumber(f16Bits(1.5 * 2 ** -25)), 2 ** -24);
    assert.ok(Object.is(f16ToNumber(f16Bits(-0)), -0));
  });
});
