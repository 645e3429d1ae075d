// Perplexity protocol: non-overlapping windows, the dropped tail, the predicted count,
// and the reduction exp(mean NLL).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { perplexityWindows, reducePerplexity } from '../../activities/data/perplexity';

describe('perplexityWindows', () => {
  it('cuts consecutive windows and drops the partial tail', () => {
    const stream = Int32Array.from({ length: 23 }, (_, i) => i);
    const w = perplexityWindows(stream, 5);
    assert.equal(w.windows, 4);
    assert.deepEqual([...w.tokens], Array.from({ length: 20 }, (_, i) => i));
    assert.deepEqual(w.protocol, {
      name: 'non-overlapping-windows',
      version: 1,
      context: 5,
      windows: 4,
      streamTokens: 23,
      predicted: 16,
      droppedTailTokens: 3,
    });
  });

  it('drops nothing when the stream is a whole number of windows', () => {
    const w = perplexityWindows(new Int32Array(20), 5);
    assert.equal(w.protocol.droppedTailTokens, 0);
    assert.equal(w.windows, 4);
  });

  it('rejects a stream shorter than one window, naming it', () => {
    assert.throws(() => perplexityWindows(new Int32Array(4), 5, 'data.eval.tiny'), {
      message: 'data.eval.tiny has 4 tokens, fewer than one perplexity window of context = 5 tokens',
    });
    assert.throws(() => perplexityWindows(new Int32Array(4), 1), /context must be an integer ≥ 2/);
  });
});

describe('reducePerplexity', () => {
  const { protocol } = perplexityWindows(new Int32Array(10), 5); // 2 windows × 4 predicted

  it('is exp of the mean NLL over every predicted position', () => {
    const nll = Float32Array.from([1, 2, 3, 4, 0.5, 0.5, 0.5, 0.5]);
    const result = reducePerplexity(nll, protocol);
    assert.equal(result.predicted, 8);
    assert.equal(result.meanNll, 12 / 8);
    assert.equal(result.perplexity, Math.exp(1.5));
    assert.equal(result.protocol, protocol);
  });

  it('gives the vocabulary size for a uniform model', () => {
    const nll = new Float64Array(8).fill(Math.log(256));
    assert.ok(Math.abs(reducePerplexity(nll, protocol).perplexity - 256) < 1e-9);
  });

  it('checks the count and finiteness of the NLLs', () => {
    assert.throws(() => reducePerplexity(new Float32Array(10), protocol), {
      message: 'expected 8 NLLs (2 windows × 4 predicted positions), got 10',
    });
    const nll = new Float32Array(8);
    nll[5] = NaN;
    assert.throws(() => reducePerplexity(nll, protocol), { message: "NLL of window 1, position 2 is NaN: the model's output is not finite" });
  });
});
