// The typed wrapper kernels/index.ts over the real addon: argument checks and their messages,
// copies in and out of the model, devices, learning, cancellation, the busy refusal, progress,
// dispose.
// Facts only: nothing here asserts on timing.
import assert from 'node:assert/strict';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';

import {
  BackendUnavailableError,
  backendInfo,
  benchSgemm,
  CancelledError,
  checkConfig,
  dequantize,
  gptq,
  InvalidArgumentError,
  lrAt,
  Model,
  type ModelConfig,
  quantizeRtn,
  SieveError,
  StateError,
} from '../../kernels';

const gpt2: ModelConfig = { family: 'gpt2', layers: 2, dim: 32, heads: 4, context: 32, vocab: 64, mlpHidden: 128, normEps: 1e-5, ropeTheta: null, adapters: null };
const llama: ModelConfig = { ...gpt2, family: 'llama', mlpHidden: 96, ropeTheta: 10000 };
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

function model(config = gpt2, seed = 1): Model {
  const m = Model.create(config);
  m.init(seed);
  return m;
}

async function rejects(p: Promise<unknown>, cls: new (...a: never[]) => Error, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.match((e as Error).message, message);
    return true;
  });
}

function throws(f: () => unknown, cls: new (...a: never[]) => Error, message: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.match((e as Error).message, message);
    return true;
  });
}

describe('config checks', () => {
  const bad: [Partial<ModelConfig>, RegExp][] = [
    [{ heads: 3 }, /^heads \(3\) must divide dim \(32\)$/],
    [{ layers: 0 }, /^layers must be at least 1, got 0$/],
    [{ context: 0 }, /^context must be at least 1, got 0$/],
    [{ family: 'bert' as never }, /^unknown model family "bert": expected 'gpt2' or 'llama'$/],
    [{ vocab: 1 }, /^vocab must be at least 2, got 1$/],
    [{ dim: 2.5 }, /^dim must be a whole number, got 2.5$/],
    [{ normEps: 0 }, /^normEps must be a finite number > 0, got 0$/],
    [{ ropeTheta: 10000 }, /^ropeTheta must be null for gpt2/],
  ];
  for (const [edit, message] of bad) {
    test(`rejects ${JSON.stringify(edit)}`, () => {
      throws(() => Model.create({ ...gpt2, ...edit }), InvalidArgumentError, message);
      throws(() => checkConfig({ ...gpt2, ...edit }), InvalidArgumentError, message);
    });
  }
  test('llama needs an even head size and a RoPE theta', () => {
    throws(() => Model.create({ ...llama, heads: 32 }), InvalidArgumentError, /^head size dim\/heads = 1 must be even for RoPE \(llama\)$/);
    throws(() => Model.create({ ...llama, ropeTheta: null }), InvalidArgumentError, /^ropeTheta must be a finite number > 0 for llama/);
  });
  test('errors share one base class', () => {
    try {
      Model.create({ ...gpt2, layers: 0 });
      assert.fail('no error');
    } catch (e) {
      assert.ok(e instanceof SieveError);
      assert.equal((e as SieveError).status, 1);
    }
  });
});

describe('the model surface', () => {
  test('tensor table, tensors by name, buffers of the same layout', () => {
    const m = model();
    assert.equal(m.read('param').length, m.numParams);
    assert.equal(m.tensors[0].name, 'tok_emb.weight');
    const qkv = m.info('blocks.1.attn.qkv.weight');
    assert.deepEqual([...qkv.shape], [96, 32]);
    assert.equal(qkv.kind, 'linear');
    assert.equal(qkv.scope, 'attn');
    assert.equal(qkv.decay, true);
    assert.equal(m.info('blocks.0.mlp.proj.weight').scope, 'ffn');
    assert.equal(m.info('norm_f.bias').decay, false);
    for (const b of ['grad', 'mask', 'm', 'v'] as const) assert.equal(m.readTensor('blocks.0.mlp.fc.weight', b).length, 128 * 32);
    assert.ok(m.read('mask').every((x) => x === 1), 'a mask never written reads as ones');
    for (const b of ['grad', 'm', 'v'] as const) assert.ok(m.read(b).every((x) => x === 0), `${b} never written reads as zeros`);
    const norm = m.readTensor('blocks.0.norm1.weight');
    norm[3] = 42;
    m.writeTensor('blocks.0.norm1.weight', norm);
    assert.equal(m.read('param')[m.info('blocks.0.norm1.weight').offset + 3], 42);
    m.writeTensor('blocks.0.mlp.fc.weight', new Float32Array(128 * 32).fill(0.5), 'mask');
    const masks = m.read('mask');
    const fc = m.info('blocks.0.mlp.fc.weight');
    assert.ok(masks.every((x, i) => x === (i >= fc.offset && i < fc.offset + fc.size ? 0.5 : 1)), 'a tensor write fills its own slice only');
    m.dispose();
  });

  test('a write is seen by the next forward; what read returns is a copy', async () => {
    for (const config of [gpt2, llama]) {
      const m = model(config);
      const x = tokens(2 * 16, config.vocab);
      const before = await m.logits(x, 2, 16);
      assert.ok(before.some((v) => v !== 0));
      const saved = m.read('param');
      const head = config.family === 'gpt2' ? 'tok_emb.weight' : 'lm_head.weight';
      // editing a copy changes nothing in the model
      m.readTensor(head).fill(0);
      saved.subarray(0, 10).fill(7);
      assert.deepEqual(await m.logits(x, 2, 16), before);
      saved.set(m.read('param').subarray(0, 10));
      // the LM head (tied to tok_emb for gpt2) written as zeros makes every logit exactly zero
      m.writeTensor(head, new Float32Array(m.info(head).size));
      if (config.family === 'gpt2') m.writeTensor('pos_emb.weight', new Float32Array(m.info('pos_emb.weight').size));
      const after = await m.logits(x, 2, 16);
      assert.equal(after.length, 2 * 16 * config.vocab);
      assert.ok(after.every((v) => v === 0));
      // the copy read before still holds the old weights; writing it back restores every bit
      assert.ok(saved.subarray(m.info(head).offset, m.info(head).offset + m.info(head).size).some((v) => v !== 0));
      m.write('param', saved);
      assert.deepEqual(await m.logits(x, 2, 16), before);
      m.dispose();
    }
  });

  test('copies of a wrong size, an unknown tensor or buffer are clear errors', () => {
    const m = model();
    const P = m.numParams;
    const before = m.read('param');
    throws(() => m.write('param', new Float32Array(P - 1)), InvalidArgumentError, new RegExp(`^Expected a Float32Array of numParams = ${P} elements for data but received a Float32Array of ${P - 1} elements$`));
    throws(() => m.write('grad', new Float64Array(P) as never), InvalidArgumentError, /for data but received a Float64Array of \d+ elements$/);
    throws(
      () => m.writeTensor('blocks.0.norm1.weight', new Float32Array(31)),
      InvalidArgumentError,
      /^Expected a Float32Array of the size of 'blocks.0.norm1.weight' = 32 elements for data but received a Float32Array of 31 elements$/,
    );
    throws(() => m.writeTensor('blocks.9.norm1.weight', new Float32Array(32)), InvalidArgumentError, /no tensor named 'blocks.9.norm1.weight'/);
    throws(() => m.readTensor('blocks.7.attn.qkv.weight'), InvalidArgumentError, /no tensor named 'blocks.7.attn.qkv.weight'/);
    throws(() => m.readTensor('tok_emb.weight', 'adam' as never), InvalidArgumentError, /Expected one of 'param', 'grad', 'mask', 'm', 'v' for buffer but received "adam"/);
    throws(() => m.read('toString' as never), InvalidArgumentError, /for buffer but received "toString"/);
    assert.deepEqual(m.read('param'), before, 'refused writes wrote nothing');
    m.dispose();
  });

  test('devices: cpu by default; a device without a backend in this build is BackendUnavailableError', async () => {
    const m = model();
    assert.equal(m.device, 'cpu');
    assert.deepEqual(m.backend, backendInfo('cpu'));
    m.dispose();
    // Where no libsieve_cuda.so is (set before this process first asks for cuda: the answer is kept).
    process.env.SIEVE_CUDA_LIBRARY = path.join(os.tmpdir(), 'no-such-dir', 'libsieve_cuda.so');
    const message = /^this build of sieve has no CUDA backend \(no libsieve_cuda\.so at \S+no-such-dir\/libsieve_cuda\.so; build it with kernels\/cuda\/build\.sh where nvcc exists, or set SIEVE_CUDA_LIBRARY\); use device cpu$/;
    throws(() => Model.create(gpt2, { device: 'cuda' }), BackendUnavailableError, message);
    throws(() => backendInfo('cuda'), BackendUnavailableError, message);
    try {
      backendInfo('cuda');
    } catch (e) {
      assert.ok(e instanceof SieveError);
      assert.equal((e as SieveError).status, 6);
    }
    // the op-level quantization too: device cuda is never quietly the CPU
    const spec = { bits: 4 as const, group: 4, symmetric: false };
    const w = Float32Array.from({ length: 16 }, (_, i) => i - 7.5);
    const q = quantizeRtn(w, 2, 8, spec);
    throws(() => quantizeRtn(w, 2, 8, spec, undefined, { device: 'cuda' }), BackendUnavailableError, message);
    throws(() => dequantize(q, { device: 'cuda' }), BackendUnavailableError, message);
    await assert.rejects(gptq(w, new Float64Array(64).fill(1), 2, 8, { ...spec, damp: 0.01, actOrder: false }, undefined, { device: 'cuda' }), (e) => e instanceof BackendUnavailableError && message.test(e.message));
    throws(() => quantizeRtn(w, 2, 8, spec, undefined, { device: 'tpu' as never }), InvalidArgumentError, /^Expected 'cpu' or 'cuda' for opts.device but received "tpu"$/);
    throws(() => Model.create(gpt2, { device: 'tpu' as never }), InvalidArgumentError, /^Expected 'cpu' or 'cuda' for opts.device but received "tpu"$/);
    throws(() => backendInfo('gpu' as never), InvalidArgumentError, /^Expected 'cpu' or 'cuda' for device but received "gpu"$/);
  });

  test('the step counter is readable and settable', () => {
    const m = model();
    assert.equal(m.step, 0);
    m.step = 1234;
    assert.equal(m.step, 1234);
    throws(() => (m.step = -1), InvalidArgumentError, /Expected an integer >= 0 for step but received -1/);
    m.dispose();
  });

  test('same seed, same bits; other seed, other bits', () => {
    const a = model(gpt2, 7);
    const b = model(gpt2, 7);
    const c = model(gpt2, 8);
    assert.deepEqual(Buffer.from(a.read('param').buffer), Buffer.from(b.read('param').buffer));
    assert.notDeepEqual(Buffer.from(a.read('param').buffer), Buffer.from(c.read('param').buffer));
    for (const m of [a, b, c]) m.dispose();
  });

  test('backendInfo and lrAt', () => {
    const cpu = backendInfo();
    assert.equal(cpu.device, 'cpu');
    assert.equal(cpu.name, 'cpu');
    assert.ok(cpu.threads >= 1);
    assert.ok(cpu.blas === null || cpu.blas.length > 0);
    assert.deepEqual(JSON.parse(JSON.stringify(cpu)), cpu);
    const s = { peak: 1e-3, min: 1e-4, warmup: 10, total: 110 };
    assert.equal(lrAt(0, s), 1e-4);
    assert.equal(lrAt(9, s), 1e-3);
    assert.ok(Math.abs(lrAt(60, s) - 5.5e-4) < 1e-15);
    assert.equal(lrAt(500, s), 1e-4);
    throws(() => lrAt(0, { ...s, min: 1 }), InvalidArgumentError, /schedule.min/);
    throws(() => lrAt(-1, s), InvalidArgumentError, /for step but received -1/);
  });
});

describe('argument checks before native code', () => {
  test('forwardBackward', async () => {
    const m = model();
    const B = 2;
    const T = 16;
    const x = tokens(B * T, 64);
    await rejects(m.forwardBackward(x.subarray(1), x, B, T, noKd), InvalidArgumentError, /^Expected an Int32Array of B\*T = 32 elements for inputs but received an Int32Array of 31 elements$/);
    await rejects(m.forwardBackward(new Float64Array(32) as never, x, B, T, noKd), InvalidArgumentError, /for inputs but received a Float64Array of 32 elements/);
    const bad = x.slice();
    bad[5] = 64;
    await rejects(m.forwardBackward(bad, x, B, T, noKd), InvalidArgumentError, /^inputs\[5\] = 64 is not a token id of this model \(vocab 64\)$/);
    const ignored = x.slice().fill(-1);
    await rejects(m.forwardBackward(x, ignored, B, T, noKd), InvalidArgumentError, /every target is -1/);
    await rejects(m.forwardBackward(tokens(66, 64), tokens(66, 64), 2, 33, noKd), InvalidArgumentError, /^T = 33 exceeds the model's context \(32\)$/);
    await rejects(m.forwardBackward(x, x, B, T, { ...noKd, teacherLogits: new Float32Array(B * T * 64) }), InvalidArgumentError, /must be given together/);
    await rejects(
      m.forwardBackward(x, x, B, T, { lossScale: 1, teacherLogits: new Float32Array(B * T * 64), kd: { alpha: 2, tau: 1 } }),
      InvalidArgumentError,
      /opts.kd.alpha/,
    );
    await rejects(m.forwardBackward(x, x, B, T, { lossScale: 1, teacherLogits: new Float32Array(10), kd: { alpha: 0.5, tau: 1 } }), InvalidArgumentError, /B\*T\*V = 2048 elements for opts.teacherLogits/);
    await rejects(m.forwardBackward(x, x, 0, T, noKd), InvalidArgumentError, /Expected an integer >= 1 for B but received 0/);
    await rejects(m.optimizerStep({ ...adam, beta2: 1 }), InvalidArgumentError, /opts.beta2/);
    await rejects(m.optimizerStep({ ...adam, skipNonFinite: 1 as never }), InvalidArgumentError, /Expected a boolean for opts.skipNonFinite but received 1/);
    m.dispose();
  });

  test('evaluation and seams', async () => {
    const m = model(llama);
    await rejects(m.evalNll(tokens(8, 64), 8, 1), InvalidArgumentError, /Expected an integer >= 2 for T but received 1/);
    await rejects(m.logits(tokens(8, 64), 2, 4, 5 as never), InvalidArgumentError, /Expected a function for onProgress/);
    throws(() => m.setTransform('tok_emb.weight', { kind: 'mask' }), InvalidArgumentError, /'tok_emb.weight' is not a linear weight/);
    throws(() => m.setTransform('blocks.0.mlp.up.weight', 'sste' as never), InvalidArgumentError, /Expected \{ kind: 'none' \}, \{ kind: 'mask' \}, \{ kind: 'sste', beta \} or \{ kind: 'scale' \} for the transform of 'blocks.0.mlp.up.weight' but received "sste"/);
    throws(() => m.setTransform('blocks.0.mlp.up.weight', { kind: 'sste', beta: -1 }), InvalidArgumentError, /Expected a finite number > 0 for the sste beta of 'blocks.0.mlp.up.weight' but received -1/);
    throws(() => m.setTransform('blocks.0.mlp.up.weight', { kind: 'scale' }), InvalidArgumentError, /'blocks.0.mlp.up.weight' has none/);
    throws(() => m.setGradHook('blocks.0.mlp.up.weight', { kind: 'masked-decay', lambda: -1 }), InvalidArgumentError, /masked-decay lambda/);
    throws(() => m.setUpdateRule('blocks.0.mlp.up.weight', 'adamw' as never), InvalidArgumentError, /Expected \{ kind: 'adamw' \}, \{ kind: 'frozen' \}, \{ kind: 'ast', lambda \} or \{ kind: 'adams', alpha, lambda \}/);
    throws(() => m.setUpdateRule('blocks.0.mlp.up.weight', { kind: 'sgd' } as never), InvalidArgumentError, /for the update rule of 'blocks.0.mlp.up.weight' but received an object/);
    throws(() => m.setUpdateRule('blocks.0.mlp.up.weight', { kind: 'adams', alpha: 2, lambda: 0 }), InvalidArgumentError, /Expected a number in \[0, 1\] for the adams alpha of 'blocks.0.mlp.up.weight' but received 2/);
    m.dispose();
  });
});

describe('training and evaluation', () => {
  test('a tiny model learns: the loss on its data falls', async () => {
    for (const config of [gpt2, llama]) {
      const m = model(config, 3);
      const B = 4;
      const T = 32;
      // a short repeating pattern: learnable, so the loss must drop well below ln(64) = 4.16
      const text = Int32Array.from({ length: B * T + 1 }, (_, i) => [5, 9, 12, 5, 30, 41, 9, 2][i % 8]);
      const losses: number[] = [];
      for (let s = 0; s < 40; s++) {
        m.zeroGrad();
        // two micro-batches of 2 sequences: gradient accumulation with lossScale 1/2
        let loss = 0;
        for (let k = 0; k < 2; k++) {
          const off = k * 2 * T;
          const r = await m.forwardBackward(text.subarray(off, off + 2 * T), text.subarray(off + 1, off + 1 + 2 * T), 2, T, { ...noKd, lossScale: 0.5 });
          loss += r.loss / 2;
        }
        const { gradNorm } = await m.optimizerStep({ ...adam, lr: lrAt(s, { peak: 1e-2, min: 1e-3, warmup: 5, total: 40 }) });
        assert.ok(Number.isFinite(gradNorm));
        losses.push(loss);
      }
      assert.equal(m.step, 40);
      assert.ok(losses[0] > 3.5, `initial loss ${losses[0]}`);
      assert.ok(losses.at(-1)! < 1.0, `${config.family}: loss went from ${losses[0]} to ${losses.at(-1)}`);
      const nll = await m.evalNll(text.subarray(0, 4 * T), 4, T);
      assert.equal(nll.length, 4 * (T - 1));
      const mean = nll.reduce((a, b) => a + b, 0) / nll.length;
      assert.ok(mean < 1.0, `eval NLL ${mean}`);
      m.dispose();
    }
  });

  test('distillation from an identical teacher has zero KL; the teacher needs no training state', async () => {
    const teacher = model(gpt2, 5);
    const student = model(gpt2, 5);
    const x = tokens(2 * 32 + 1, 64, 9);
    const t = await teacher.logits(x.subarray(0, 64), 2, 32);
    const r = await student.forwardBackward(x.subarray(0, 64), x.subarray(1), 2, 32, { lossScale: 1, teacherLogits: t, kd: { alpha: 1, tau: 2 } });
    assert.ok(Math.abs(r.kl) < 1e-6, `kl ${r.kl}`);
    assert.ok(r.ce > 3);
    assert.equal(r.tokens, 64);
    teacher.dispose();
    student.dispose();
  });

  test('skipNonFinite: a non-finite gradient norm is reported and nothing changes; a finite one is the ordinary step', async () => {
    const [skipping, plain] = [model(gpt2, 4), model(gpt2, 4)];
    const x = tokens(65, 64, 3);
    for (const m of [skipping, plain]) {
      await m.forwardBackward(x.subarray(0, 64), x.subarray(1), 2, 32, noKd);
    }
    const finite = await skipping.optimizerStep({ ...adam, skipNonFinite: true });
    const reference = await plain.optimizerStep(adam);
    assert.deepEqual(finite, { gradNorm: reference.gradNorm, applied: true });
    for (const buffer of ['param', 'm', 'v', 'grad'] as const) assert.deepEqual(skipping.read(buffer), plain.read(buffer), buffer);

    const poisoned = skipping.read('grad');
    poisoned[17] = Number.NaN;
    skipping.write('grad', poisoned);
    const before = { param: skipping.read('param'), m: skipping.read('m'), v: skipping.read('v'), step: skipping.step };
    const skipped = await skipping.optimizerStep({ ...adam, skipNonFinite: true });
    assert.ok(Number.isNaN(skipped.gradNorm));
    assert.equal(skipped.applied, false);
    assert.equal(skipping.step, before.step, 'the step counter does not count it');
    // Bit-level comparison (deepEqual treats NaN as equal and -0 as 0; these hold neither).
    for (const buffer of ['param', 'm', 'v'] as const) assert.ok(Buffer.from(skipping.read(buffer).buffer).equals(Buffer.from(before[buffer].buffer)), `${buffer} untouched`);
    assert.ok(Buffer.from(skipping.read('grad').buffer).equals(Buffer.from(poisoned.buffer)), 'the gradient is neither clipped nor hooked');

    const applied = await skipping.optimizerStep(adam);
    assert.equal(applied.applied, true, 'without the option the update goes through');
    assert.ok(Number.isNaN(skipping.read('param')[17]));
    skipping.dispose();
    plain.dispose();
  });

  test('a frozen tensor does not move; the rest does', async () => {
    const m = model();
    m.setUpdateRule('blocks.0.attn.out.weight', { kind: 'frozen' });
    const frozen = m.readTensor('blocks.0.attn.out.weight');
    const other = m.readTensor('blocks.0.attn.qkv.weight');
    const x = tokens(65, 64);
    await m.forwardBackward(x.subarray(0, 64), x.subarray(1), 2, 32, noKd);
    await m.optimizerStep(adam);
    assert.deepEqual(m.readTensor('blocks.0.attn.out.weight'), frozen);
    assert.notDeepEqual(m.readTensor('blocks.0.attn.qkv.weight'), other);
    m.dispose();
  });

  test('progress reports windows done; a throwing callback rejects the call with its error', async () => {
    const m = model({ ...gpt2, context: 512 });
    const seen: [number, number][] = [];
    await m.evalNll(tokens(24 * 512, 64), 24, 512, (done, total) => seen.push([done, total]));
    assert.ok(seen.length >= 1);
    assert.deepEqual(seen.at(-1), [24, 24]);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i][0] > seen[i - 1][0]);
    await assert.rejects(
      m.evalNll(tokens(24 * 512, 64), 24, 512, () => {
        throw new Error('boom from onProgress');
      }),
      /boom from onProgress/,
    );
    assert.equal(m.busy, false);
    m.dispose();
  });
});

describe('benchmark hooks', () => {
  test('timers count the GEMM work of a step exactly; benchSgemm times both paths', async () => {
    const m = model();
    const x = tokens(4 * 32 + 1, 64);
    await m.forwardBackward(x.subarray(0, 128), x.subarray(1), 4, 32, noKd);
    const t = m.timers();
    const { layers: L, dim: C, mlpHidden: H, vocab: V } = gpt2;
    // forward, input gradient and weight gradient of every linear layer and the (tied) head
    const matmulParams = L * (3 * C * C + C * C + H * C + C * H) + V * C;
    assert.equal(t.gemmFlops, 6 * 128 * matmulParams);
    assert.equal(t.sparseGemmFlops, 0); // the CPU multiplies every weight densely (cuSPARSELt is the GPU's)
    assert.equal(t.tokens, 128);
    assert.ok(t.gemmSeconds > 0 && t.gemmSeconds <= t.totalSeconds);
    assert.ok(t.attentionSeconds > 0 && t.attentionSeconds <= t.totalSeconds);
    m.resetTimers();
    assert.equal(m.timers().gemmFlops, 0);
    m.dispose();
    for (const path of ['blas', 'engine'] as const) {
      const s = await benchSgemm({ transA: false, transB: true, M: 128, N: 96, K: 64, reps: 2, threads: 1, path });
      assert.ok(s > 0);
    }
    await rejects(benchSgemm({ transA: false, transB: false, M: 0, N: 1, K: 1, reps: 1, threads: 1, path: 'blas' }), InvalidArgumentError, /for M but received 0/);
  });
});

describe('concurrency, cancellation, disposal', () => {
  test('a second call while one is pending is refused: model is busy', async () => {
    const m = model();
    const x = tokens(8 * 32 + 1, 64);
    const pending = m.forwardBackward(x.subarray(0, 256), x.subarray(1), 8, 32, noKd);
    assert.equal(m.busy, true);
    await rejects(m.optimizerStep(adam), StateError, /model is busy/);
    await rejects(m.evalNll(x.subarray(0, 256), 8, 32), StateError, /model is busy/);
    throws(() => m.zeroGrad(), StateError, /model is busy/);
    throws(() => m.read('grad'), StateError, /model is busy/);
    throws(() => m.readTensor('tok_emb.weight'), StateError, /model is busy/);
    throws(() => m.write('param', new Float32Array(m.numParams)), StateError, /model is busy/);
    throws(() => m.writeTensor('blocks.0.norm1.weight', new Float32Array(32), 'mask'), StateError, /model is busy/);
    throws(() => m.dispose(), StateError, /model is busy/);
    const r = await pending;
    assert.ok(r.loss > 0);
    assert.equal(m.busy, false);
    assert.ok(m.read('grad').some((g) => g !== 0), 'the gradients of the call are readable once it settled');
    assert.ok(m.read('mask').every((x) => x === 1), 'the refused mask write wrote nothing');
    await m.optimizerStep(adam); // usable again
    m.dispose();
  });

  test('cancel() rejects the pending call with CancelledError, and the model stays usable', async () => {
    const m = model({ ...gpt2, layers: 4, dim: 64, mlpHidden: 256, context: 256 });
    const x = tokens(400 * 256, 64);
    const pending = m.evalNll(x, 400, 256);
    m.cancel();
    await rejects(pending, CancelledError, /cancelled/);
    const fb = m.forwardBackward(x.subarray(0, 8 * 256), x.subarray(1, 8 * 256 + 1), 8, 256, noKd);
    m.cancel();
    await rejects(fb, CancelledError, /cancelled/);
    // a cancel with nothing pending does not leak into the next call
    m.cancel();
    const nll = await m.evalNll(x.subarray(0, 2 * 256), 2, 256);
    assert.equal(nll.length, 2 * 255);
    m.dispose();
  });

  test('dispose frees the memory: copies read before stay valid, later calls are clear errors', async () => {
    const m = model();
    const params = m.read('param');
    const fc = m.readTensor('blocks.0.mlp.fc.weight');
    m.dispose();
    assert.equal(m.disposed, true);
    assert.equal(params.length, m.numParams);
    assert.equal(fc.length, 128 * 32);
    assert.ok(fc.some((v) => v !== 0));
    throws(() => m.read('param'), StateError, /model has been disposed/);
    throws(() => m.readTensor('blocks.0.mlp.fc.weight'), StateError, /model has been disposed/);
    throws(() => m.write('param', params), StateError, /model has been disposed/);
    throws(() => m.writeTensor('blocks.0.mlp.fc.weight', fc), StateError, /model has been disposed/);
    throws(() => m.init(1), StateError, /model has been disposed/);
    await rejects(m.evalNll(tokens(64, 64), 2, 32), StateError, /model has been disposed/);
    m.dispose(); // twice is harmless
    m.cancel();
  });

  test('thread count does not change the bits', async () => {
    const run = async (threads: number) => {
      const m = Model.create({ ...gpt2, dim: 64, mlpHidden: 256, context: 64 }, { threads });
      m.init(11);
      const x = tokens(8 * 64 + 1, 64, 4);
      const losses: number[] = [];
      for (let s = 0; s < 3; s++) {
        m.zeroGrad();
        losses.push((await m.forwardBackward(x.subarray(0, 512), x.subarray(1), 8, 64, noKd)).loss);
        await m.optimizerStep(adam);
      }
      const params = Buffer.from(m.read('param').buffer);
      m.dispose();
      return { losses, params };
    };
    const one = await run(1);
    const two = await run(2);
    assert.deepEqual(one.losses, two.losses);
    assert.ok(one.params.equals(two.params));
  });
});
