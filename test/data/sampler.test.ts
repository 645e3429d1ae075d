// Batch sampler: the generator against the reference C xoshiro128**/splitmix64, window
// layout, determinism, and resume from a JSON round-tripped state giving the same bits.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BatchSampler, seedState, Xoshiro128ss } from '../../activities/data/sampler';

describe('xoshiro128** seeded by splitmix64', () => {
  // From the reference C implementations (prng.di.unimi.it), state = low, high words of
  // two splitmix64 outputs.
  const reference: [number, number[], number[]][] = [
    [0, [2065550767, 3793791033, 2713282036, 1853398634], [3737715805, 2584255861, 2876756834, 3286328325, 1553311962, 1625202774]],
    [1, [2298633409, 2433363436, 1703865447, 3203108257], [1695105466, 1423115009, 634581793, 1068227753, 716759206, 4186505319]],
    [12345678901234, [3220769424, 2662773967, 2400044538, 537531713], [249836012, 3621651019, 2489901518, 3222711161, 1152533334, 1391491222]],
  ];
  for (const [seed, state, outputs] of reference) {
    it(`matches the C reference for seed ${seed}`, () => {
      assert.deepEqual(seedState(seed), state);
      const rng = new Xoshiro128ss(state);
      assert.deepEqual(outputs.map(() => rng.nextU32()), outputs);
    });
  }

  it('draws unbiased bounded integers covering the whole range', () => {
    const rng = new Xoshiro128ss(seedState(7));
    const hits = new Array(7).fill(0);
    for (let i = 0; i < 7000; i++) hits[rng.below(7)]++;
    for (const h of hits) assert.ok(h > 850 && h < 1150, `bucket count ${h}`);
  });

  it('rejects bad seeds and an all-zero state', () => {
    assert.throws(() => seedState(-1), /non-negative safe integer/);
    assert.throws(() => seedState(1.5), /non-negative safe integer/);
    assert.throws(() => new Xoshiro128ss([0, 0, 0, 0]), /not all zero/);
  });
});

describe('BatchSampler', () => {
  const tokens = Int32Array.from({ length: 1000 }, (_, i) => i);

  it('lays out B windows of T inputs and shifted targets', () => {
    const sampler = BatchSampler.create(tokens, { batch: 4, context: 16, seed: 1 });
    const { inputs, targets, index } = sampler.next();
    assert.equal(index, 0);
    assert.equal(inputs.length, 4 * 16);
    for (let b = 0; b < 4; b++) {
      const start = inputs[b * 16];
      assert.ok(start >= 0 && start + 16 < tokens.length, 'window of T + 1 inside the stream');
      for (let t = 0; t < 16; t++) {
        assert.equal(inputs[b * 16 + t], start + t);
        assert.equal(targets[b * 16 + t], start + t + 1);
      }
    }
  });

  it('reaches both ends of the stream', () => {
    const small = Int32Array.from({ length: 6 }, (_, i) => i);
    const sampler = BatchSampler.create(small, { batch: 64, context: 4, seed: 3 });
    const starts = new Set(Array.from({ length: 64 }, () => sampler.next().inputs[0]));
    assert.deepEqual([...starts].sort(), [0, 1], 'exactly the N − T = 2 valid starts');
  });

  it('is deterministic in the seed', () => {
    const a = BatchSampler.create(tokens, { batch: 8, context: 32, seed: 42 });
    const b = BatchSampler.create(tokens, { batch: 8, context: 32, seed: 42 });
    const c = BatchSampler.create(tokens, { batch: 8, context: 32, seed: 43 });
    for (let i = 0; i < 10; i++) {
      const x = a.next();
      assert.deepEqual(x.inputs, b.next().inputs);
      assert.notDeepEqual(x.inputs, c.next().inputs);
    }
  });

  it('resumes from a JSON round-tripped state with exactly the following batches', () => {
    const uninterrupted = BatchSampler.create(tokens, { batch: 8, context: 32, seed: 9 });
    const resumed = BatchSampler.create(tokens, { batch: 8, context: 32, seed: 9 });
    for (let i = 0; i < 5; i++) {
      uninterrupted.next();
      resumed.next();
    }
    const saved = JSON.parse(JSON.stringify(resumed.state()));
    assert.equal(saved.batches, 5);
    const restored = BatchSampler.restore(tokens, saved);
    assert.deepEqual(restored.state(), saved);
    for (let i = 5; i < 15; i++) {
      const expected = uninterrupted.next();
      const got = restored.next();
      assert.equal(got.index, i);
      assert.deepEqual(got.inputs, expected.inputs);
      assert.deepEqual(got.targets, expected.targets);
    }
  });

  it('fills caller buffers and checks their size', () => {
    const sampler = BatchSampler.create(tokens, { batch: 2, context: 8, seed: 1 });
    const out = { inputs: new Int32Array(16), targets: new Int32Array(16) };
    assert.equal(sampler.next(out).inputs, out.inputs);
    assert.throws(() => sampler.next({ inputs: new Int32Array(15), targets: new Int32Array(16) }), /B × T = 16/);
  });

  it('refuses a stream too short, and a state saved for another stream or garbled', () => {
    assert.throws(() => BatchSampler.create(tokens.subarray(0, 16), { batch: 1, context: 16, seed: 1 }), {
      message: 'train stream has 16 tokens, fewer than one window of context + 1 = 17 tokens',
    });
    const state = BatchSampler.create(tokens, { batch: 2, context: 8, seed: 1 }).state();
    assert.throws(() => BatchSampler.restore(tokens.subarray(0, 999), state), /saved for a train stream of 1000 tokens, this one has 999\. HINT:/);
    assert.throws(() => BatchSampler.restore(tokens, state, { batch: 4, context: 8 }), {
      message: 'sampler state was saved for batches of B = 2, T = 8, this run uses B = 4, T = 8. HINT: resume with the recipe that made the checkpoint, or restart the stage.',
    });
    assert.equal(BatchSampler.restore(tokens, state, { batch: 2, context: 8 }).state().batches, 0);
    assert.throws(() => BatchSampler.restore(tokens, { ...state, s: [0, 0, 0, 0] }), /invalid sampler state: .*not all zero/);
    assert.throws(() => BatchSampler.restore(tokens, { ...state, algorithm: 'mt19937' }), /invalid sampler state/);
  });
});
