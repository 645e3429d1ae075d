// The 2:4 surface of kernels/index.ts over the real addon: adapters in the config and the
// table, the object forms of setTransform / setUpdateRule, updateMasks (flips, busy, cancel),
// maskStats, count24, ssteBeta, setMvue, slorbInitMean and materialize, with their argument
// checks and messages; and an S-STE run from beta to a materialized 2:4 model.
// The maths is checked op by op in the GoogleTest suite (kernels/test/sparsity_test.cc,
// rules_test.cc, sparse_model_test.cc); here: what a stage sees.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { CancelledError, checkConfig, InvalidArgumentError, lrAt, Model, type ModelConfig, StateError } from '../../kernels';

const gpt2: ModelConfig = { family: 'gpt2', layers: 2, dim: 32, heads: 4, context: 32, vocab: 64, mlpHidden: 128, normEps: 1e-5, ropeTheta: null, adapters: null };
const llama: ModelConfig = { ...gpt2, family: 'llama', mlpHidden: 96, ropeTheta: 10000 };
const withAdapters: ModelConfig = { ...gpt2, adapters: { scope: 'all', slorbK: 8, scaleSegments: 2 } };
const noKd = { lossScale: 1, teacherLogits: null, kd: null };
const adam = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1 };

function tokens(n: number, vocab: number, seed = 1): Int32Array {
  const out = new Int32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    out[i] = (s >>> 8) % vocab;
  }
  return out;
}

function model(config: ModelConfig = gpt2, seed = 1): Model {
  const m = Model.create(config);
  m.init(seed);
  return m;
}

function throws(f: () => unknown, cls: new (...a: never[]) => Error, message: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.match((e as Error).message, message);
    return true;
  });
}

async function rejects(p: Promise<unknown>, cls: new (...a: never[]) => Error, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.match((e as Error).message, message);
    return true;
  });
}

const linears = (m: Model) => m.tensors.filter((t) => t.kind === 'linear').map((t) => t.name);
const bits = (f: Float32Array) => Buffer.from(f.buffer, f.byteOffset, f.byteLength);

describe('adapters', () => {
  test('config checks, in JS and native wording', () => {
    const bad: [ModelConfig['adapters'], RegExp][] = [
      [{ scope: 'mlp' as never, slorbK: 8, scaleSegments: null }, /^Expected 'attn', 'ffn' or 'all' for adapters.scope but received "mlp"$/],
      [{ scope: 'all', slorbK: null, scaleSegments: null }, /^adapters are set but neither adapters.slorbK nor adapters.scaleSegments is/],
      [{ scope: 'attn', slorbK: 5, scaleSegments: null }, /^adapters.slorbK = 5 must divide the input width of every in-scope linear weight: dim = 32$/],
      [{ scope: 'ffn', slorbK: null, scaleSegments: 3 }, /^adapters.scaleSegments = 3 must divide the input width of every in-scope linear weight: dim = 32$/],
      [{ scope: 'all', slorbK: 0, scaleSegments: null }, /^Expected an integer >= 1 for adapters.slorbK but received 0$/],
    ];
    for (const [adapters, message] of bad) {
      throws(() => Model.create({ ...gpt2, adapters }), InvalidArgumentError, message);
      throws(() => checkConfig({ ...gpt2, adapters }), InvalidArgumentError, message);
    }
    throws(() => Model.create({ ...llama, mlpHidden: 100, adapters: { scope: 'ffn', slorbK: 8, scaleSegments: null } }), InvalidArgumentError, /^adapters.slorbK = 8 must divide the input width of every in-scope linear weight: mlpHidden = 100$/);
    const { adapters: _, ...without } = gpt2;
    throws(() => Model.create(without as ModelConfig), InvalidArgumentError, /^Expected an adapters object \{ scope, slorbK, scaleSegments \} or null for adapters but received undefined$/);
    checkConfig({ ...llama, adapters: { scope: 'attn', slorbK: 32, scaleSegments: null } }); // the FFN's width is not in scope
  });

  test('the table: adapters after their layer, kind adapter, no scope, no decay, init as documented', () => {
    const m = model(withAdapters);
    const plain = model(gpt2);
    assert.equal(m.numParams - plain.numParams, 2 * (96 * 4 + 4 * 32 + 96 * 2 + (32 * 4 + 4 * 32 + 32 * 2) + (128 * 4 + 4 * 32 + 128 * 2) + (32 * 16 + 16 * 128 + 32 * 2)));
    const names = m.tensors.map((t) => t.name);
    const at = (n: string) => names.indexOf(n);
    assert.deepEqual(names.slice(at('blocks.0.attn.qkv.weight'), at('blocks.0.attn.qkv.weight') + 5), [
      'blocks.0.attn.qkv.weight',
      'blocks.0.attn.qkv.bias',
      'blocks.0.attn.qkv.slorb_s',
      'blocks.0.attn.qkv.slorb_p',
      'blocks.0.attn.qkv.scale',
    ]);
    const s = m.info('blocks.1.mlp.proj.slorb_s');
    assert.deepEqual([s.kind, s.scope, s.decay, [...s.shape]], ['adapter', null, false, [32, 16]]);
    assert.deepEqual([...m.info('blocks.1.mlp.proj.slorb_p').shape], [16, 128]);
    assert.deepEqual([...m.info('blocks.0.mlp.fc.scale').shape], [128, 2]);
    assert.ok(m.readTensor('blocks.0.mlp.fc.scale').every((x) => x === 1));
    assert.ok(m.readTensor('blocks.0.mlp.fc.slorb_s').every((x) => x === 0));
    const p = m.readTensor('blocks.0.attn.out.slorb_p'); // [4, 32], k = 8
    for (let i = 0; i < 4; i++) for (let j = 0; j < 32; j++) assert.equal(p[i * 32 + j], j >= 8 * i && j < 8 * (i + 1) ? 1 : 0);
    assert.deepEqual(m.config.adapters, withAdapters.adapters);
    assert.ok(Object.isFrozen(m.config.adapters));
    for (const n of linears(plain)) assert.deepEqual(bits(m.readTensor(n)), bits(plain.readTensor(n)), `${n}: the same init bits`);
    m.dispose();
    plain.dispose();
  });

  test('llama: gate and up stay adjacent, their adapters follow the pair', () => {
    const m = model({ ...llama, adapters: { scope: 'ffn', slorbK: 16, scaleSegments: null } });
    const names = m.tensors.map((t) => t.name);
    const gate = names.indexOf('blocks.0.mlp.gate.weight');
    assert.deepEqual(names.slice(gate, gate + 6), [
      'blocks.0.mlp.gate.weight',
      'blocks.0.mlp.up.weight',
      'blocks.0.mlp.gate.slorb_s',
      'blocks.0.mlp.gate.slorb_p',
      'blocks.0.mlp.up.slorb_s',
      'blocks.0.mlp.up.slorb_p',
    ]);
    assert.equal(m.info('blocks.0.mlp.up.weight').offset, m.info('blocks.0.mlp.gate.weight').offset + 96 * 32);
    m.dispose();
  });
});

describe('seams in object form', () => {
  test('every transform and rule kind is accepted; their parameters are checked', async () => {
    const m = model(withAdapters);
    m.setTransform('blocks.0.attn.qkv.weight', { kind: 'mask' });
    m.setTransform('blocks.0.mlp.fc.weight', { kind: 'sste', beta: m.ssteBeta('blocks.0.mlp.fc.weight') });
    m.setTransform('blocks.1.mlp.proj.weight', { kind: 'scale' });
    m.setTransform('blocks.1.attn.out.weight', { kind: 'none' });
    m.setUpdateRule('blocks.0.attn.qkv.weight', { kind: 'ast', lambda: 1e-4 });
    m.setUpdateRule('blocks.0.mlp.fc.weight', { kind: 'adams', alpha: 0.5, lambda: 4e-7 });
    m.setUpdateRule('blocks.1.mlp.proj.scale', { kind: 'frozen' });
    m.setUpdateRule('blocks.1.mlp.proj.slorb_s', { kind: 'adamw' });
    const x = tokens(65, 64);
    const r = await m.forwardBackward(x.subarray(0, 64), x.subarray(1), 2, 32, noKd);
    assert.ok(Number.isFinite(r.loss));
    const { gradNorm } = await m.optimizerStep(adam);
    assert.ok(Number.isFinite(gradNorm));
    throws(() => m.setTransform('blocks.0.mlp.fc.weight', { kind: 'sste' } as never), InvalidArgumentError, /^Expected a finite number > 0 for the sste beta of 'blocks.0.mlp.fc.weight' but received undefined$/);
    throws(() => m.setUpdateRule('blocks.0.mlp.fc.weight', { kind: 'ast', lambda: -1 }), InvalidArgumentError, /^Expected a finite number >= 0 for the ast lambda of 'blocks.0.mlp.fc.weight' but received -1$/);
    throws(() => m.setUpdateRule('blocks.0.mlp.fc.weight', { kind: 'adams', alpha: 0.5 } as never), InvalidArgumentError, /for the adams lambda of 'blocks.0.mlp.fc.weight' but received undefined/);
    throws(() => m.setTransform('blocks.0.mlp.fc.scale', { kind: 'scale' }), InvalidArgumentError, /'blocks.0.mlp.fc.scale' is not a linear weight/);
    m.dispose();
  });
});

describe('2:4 masks from the weights', () => {
  test('updateMasks writes 2:4 masks and counts flips; maskStats and count24 follow', async () => {
    for (const config of [gpt2, llama]) {
      const m = model(config, 3);
      const names = linears(m);
      const flips = await m.updateMasks(names, 'transposable');
      assert.deepEqual(flips, names.map((n) => m.info(n).size / 2), 'the first update prunes half of the all-ones masks');
      assert.deepEqual(await m.updateMasks(names, 'transposable'), names.map(() => 0));
      for (const n of names) {
        const mask = m.readTensor(n, 'mask');
        const [OC, IC] = m.info(n).shape;
        for (let r = 0; r < OC; r++) for (let g = 0; g < IC; g += 4) assert.equal(mask[r * IC + g] + mask[r * IC + g + 1] + mask[r * IC + g + 2] + mask[r * IC + g + 3], 2);
        for (let c = 0; c < IC; c++) for (let g = 0; g < OC; g += 4) assert.equal(mask[g * IC + c] + mask[(g + 1) * IC + c] + mask[(g + 2) * IC + c] + mask[(g + 3) * IC + c], 2);
      }
      const magnitude = await m.updateMasks(names, 'magnitude');
      assert.ok(magnitude.every((f) => f % 2 === 0));
      const stats = m.maskStats(names);
      for (const [i, n] of names.entries()) {
        const w = m.readTensor(n);
        const mask = m.readTensor(n, 'mask');
        let pruned = 0;
        let total = 0;
        for (let k = 0; k < w.length; k++) {
          total += Math.abs(w[k]);
          if (mask[k] === 0) pruned += Math.abs(w[k]);
        }
        assert.ok(Math.abs(stats[i].prunedAbs - pruned) <= 1e-9 * total && Math.abs(stats[i].totalAbs - total) <= 1e-9 * total);
        assert.ok(stats[i].prunedAbs < stats[i].totalAbs / 2);
      }
      assert.deepEqual(m.count24(names, { bothWays: false }), names.map((n) => m.info(n).size / 4), 'dense weights: every group');
      m.dispose();
    }
  });

  test('argument checks name the tensor', async () => {
    const m = model({ ...gpt2, mlpHidden: 130 });
    await rejects(m.updateMasks(['tok_emb.weight'], 'magnitude'), InvalidArgumentError, /^tensor 'tok_emb.weight' is not a linear weight: only linear weights take a 2:4 mask$/);
    await rejects(m.updateMasks(['blocks.0.mlp.proj.weight'], 'magnitude'), InvalidArgumentError, /^tensor 'blocks.0.mlp.proj.weight' \[32, 130\] has no 2:4 groups along its input dim: 130 is not a multiple of 4$/);
    await rejects(m.updateMasks(['blocks.0.mlp.fc.weight'], 'transposable'), InvalidArgumentError, /\[130, 32\] has no 2:4 groups along its output dim/);
    await rejects(m.updateMasks(['blocks.0.mlp.fc.weight'], 'random' as never), InvalidArgumentError, /^Expected 'magnitude' or 'transposable' for method but received "random"$/);
    await rejects(m.updateMasks('blocks.0.mlp.fc.weight' as never, 'magnitude'), InvalidArgumentError, /^Expected an array of tensor names for names/);
    await rejects(m.updateMasks(['blocks.9.mlp.fc.weight'], 'magnitude'), InvalidArgumentError, /no tensor named 'blocks.9.mlp.fc.weight'/);
    throws(() => m.count24(['blocks.0.mlp.fc.weight'], { bothWays: true }), InvalidArgumentError, /output dim/);
    throws(() => m.count24(['blocks.0.mlp.fc.weight'], true as never), InvalidArgumentError, /^Expected \{ bothWays: boolean \} for opts but received a boolean$/);
    throws(() => m.setMvue('blocks.0.norm1.weight', 1), InvalidArgumentError, /only linear weights take MVUE/);
    throws(() => m.setMvue('blocks.0.mlp.fc.weight', -1), InvalidArgumentError, /^Expected an integer >= 0 for the MVUE seed of 'blocks.0.mlp.fc.weight' but received -1$/);
    throws(() => m.slorbInitMean(['blocks.0.mlp.fc.weight']), InvalidArgumentError, /^tensor 'blocks.0.mlp.fc.weight' has no SLoRB adapters/);
    const flat = new Float32Array(m.info('blocks.0.attn.out.weight').size).fill(0.25);
    m.writeTensor('blocks.0.attn.out.weight', flat);
    throws(() => m.ssteBeta('blocks.0.attn.out.weight'), InvalidArgumentError, /^S\(W\) of tensor 'blocks.0.attn.out.weight' is all zero/);
    assert.deepEqual(await m.updateMasks([], 'magnitude'), []);
    m.dispose();
  });

  test('updateMasks and materialize are async: busy while pending, cancellable', async () => {
    const m = model({ ...gpt2, layers: 4, dim: 256, heads: 4, mlpHidden: 1024 });
    const names = linears(m);
    const pending = m.updateMasks(names, 'transposable');
    assert.equal(m.busy, true);
    throws(() => m.readTensor(names[0], 'mask'), StateError, /model is busy/);
    throws(() => m.maskStats(names), StateError, /model is busy/);
    await rejects(m.materialize(), StateError, /model is busy/);
    const flips = await pending;
    assert.equal(flips.length, names.length);
    assert.equal(m.busy, false);
    const cancelled = m.updateMasks([...names, ...names, ...names], 'transposable');
    m.cancel();
    await rejects(cancelled, CancelledError, /cancelled/);
    m.write('mask', new Float32Array(m.numParams).fill(1));
    assert.deepEqual(await m.updateMasks(names.slice(0, 1), 'magnitude'), [m.info(names[0]).size / 2], 'usable again');
    m.dispose();
  });
});

describe('MVUE and SLoRB', () => {
  test('setMvue: the same seed gives the same gradient, null gives the dense one back', async () => {
    const x = tokens(65, 64, 5);
    const grads = async (m: Model) => {
      m.zeroGrad();
      await m.forwardBackward(x.subarray(0, 64), x.subarray(1), 2, 32, noKd);
      return m.read('grad');
    };
    const m = model(llama, 4);
    const dense = await grads(m);
    m.setMvue('blocks.0.mlp.gate.weight', 11);
    const a = await grads(m);
    const b = await grads(m);
    assert.ok(bits(a).equals(bits(b)));
    assert.ok(!bits(a).equals(bits(dense)));
    const up = m.info('blocks.0.mlp.up.weight');
    assert.ok(bits(a.subarray(up.offset, up.offset + up.size)).equals(bits(dense.subarray(up.offset, up.offset + up.size))), 'up shares the GEMM with gate but keeps its dense gradient');
    m.setMvue('blocks.0.mlp.gate.weight', null);
    assert.ok(bits(await grads(m)).equals(bits(dense)));
    m.dispose();
  });

  test('slorbInitMean: S is the mean of the pruned weights of each k-block', async () => {
    const m = model(withAdapters, 6);
    const name = 'blocks.1.mlp.fc.weight';
    await m.updateMasks([name], 'magnitude');
    m.slorbInitMean([name]);
    const w = m.readTensor(name);
    const mask = m.readTensor(name, 'mask');
    const s = m.readTensor('blocks.1.mlp.fc.slorb_s');
    const [OC, IC] = m.info(name).shape;
    const k = 8;
    for (let d = 0; d < OC; d++) {
      for (let i = 0; i < IC / k; i++) {
        let sum = 0;
        for (let j = i * k; j < (i + 1) * k; j++) sum += w[d * IC + j] * (1 - mask[d * IC + j]);
        assert.equal(s[d * (IC / k) + i], Math.fround(sum / k));
      }
    }
    m.dispose();
  });
});

describe('an S-STE run, end to end', () => {
  test('beta once, train with the soft threshold, materialize: 2:4 weights and the same logits', async () => {
    const m = model(gpt2, 7);
    const names = linears(m).filter((n) => m.info(n).scope === 'ffn');
    const betas = names.map((n) => m.ssteBeta(n));
    assert.ok(betas.every((b) => b > 1));
    names.forEach((n, i) => m.setTransform(n, { kind: 'sste', beta: betas[i] }));
    const text = Int32Array.from({ length: 4 * 32 + 1 }, (_, i) => [5, 9, 12, 5, 30, 41, 9, 2][i % 8]);
    const losses: number[] = [];
    for (let s = 0; s < 15; s++) {
      m.zeroGrad();
      losses.push((await m.forwardBackward(text.subarray(0, 128), text.subarray(1), 4, 32, noKd)).loss);
      await m.optimizerStep({ ...adam, lr: lrAt(s, { peak: 1e-2, min: 1e-3, warmup: 3, total: 15 }) });
    }
    assert.ok(losses.at(-1)! < losses[0], `the loss fell: ${losses[0]} -> ${losses.at(-1)}`);
    assert.ok(m.count24(names, { bothWays: false }).every((c) => c > 0), 'the dense weights are still dense');
    const before = await m.logits(text.subarray(0, 64), 2, 32);
    await m.materialize();
    assert.deepEqual(m.count24(names, { bothWays: false }), names.map(() => 0), 'beta S(W) is 2:4');
    assert.ok(bits(await m.logits(text.subarray(0, 64), 2, 32)).equals(bits(before)), 'the plain forward gives the same logits');
    m.dispose();
  });
});
