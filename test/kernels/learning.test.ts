// A fact about learning, not a timing: a small byte-level GPT-2 trained by the engine for a fixed
// number of steps on the State of the Union addresses of 1790–1999 predicts the held-out 2000–2016
// addresses clearly better than the best context-free model, the byte unigram fitted on the
// training text (its cross-entropy on the same held-out positions is the bar).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { tokenizeCorpus } from '../../activities/data/corpus';
import { perplexityWindows, reducePerplexity } from '../../activities/data/perplexity';
import { BatchSampler } from '../../activities/data/sampler';
import { lrAt, Model } from '../../kernels';

const STEPS = 400;
const B = 16;
const T = 64;

/** Cross-entropy (nats) on the predicted positions of `windows` of the add-one byte unigram of `train`. */
function unigramCrossEntropy(train: Int32Array, windows: Int32Array, context: number): number {
  const counts = new Float64Array(256).fill(1);
  for (const b of train) counts[b]++;
  const total = counts.reduce((a, c) => a + c, 0);
  let sum = 0;
  let n = 0;
  for (let i = 0; i < windows.length; i++) {
    if (i % context === 0) continue; // the first token of each window is conditioned on, never predicted
    sum -= Math.log(counts[windows[i]] / total);
    n++;
  }
  return sum / n;
}

test(`a byte-level GPT-2 on SOTU beats the byte unigram on held-out speeches after ${STEPS} steps`, { timeout: 300_000 }, async () => {
  const train = tokenizeCorpus({ corpus: 'sotu', years: [1790, 1999] }, 'bytes').tokens;
  const heldOut = perplexityWindows(tokenizeCorpus({ corpus: 'sotu', years: [2000, 2016] }, 'bytes').tokens, T, 'sotu 2000–2016');
  const model = Model.create({ family: 'gpt2', layers: 2, dim: 64, heads: 4, context: T, vocab: 256, mlpHidden: 256, normEps: 1e-5, ropeTheta: null, adapters: null });
  try {
    model.init(1);
    const sampler = BatchSampler.create(train, { batch: B, context: T, seed: 1 });
    for (let step = 0; step < STEPS; step++) {
      const batch = sampler.next();
      model.zeroGrad();
      await model.forwardBackward(batch.inputs, batch.targets, B, T, { lossScale: 1, teacherLogits: null, kd: null });
      await model.optimizerStep({ lr: lrAt(step, { peak: 3e-3, min: 3e-4, warmup: 40, total: STEPS }), beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1 });
    }
    const nll = await model.evalNll(heldOut.tokens, heldOut.windows, T);
    const { meanNll } = reducePerplexity(nll, heldOut.protocol);
    const unigram = unigramCrossEntropy(train, heldOut.tokens, T);
    assert.ok(unigram > 2.5 && unigram < 3.5, `the byte unigram of English text is about 3 nats (${unigram})`);
    assert.ok(meanNll < unigram - 0.4, `held-out loss ${meanNll.toFixed(3)} nats vs the byte unigram's ${unigram.toFixed(3)}`);
  } finally {
    model.dispose();
  }
});
