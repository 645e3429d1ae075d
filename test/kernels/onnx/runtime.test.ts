// OnnxModel, the ORT runner of sieve's ONNX exports: the engine's argument checks and wording
// (bad token ids, T beyond the context, shapes), a model without sieve's metadata refused naming
// its file, disposal, and evalNll in bounded chunks at a GPT-2-sized vocabulary with progress per
// chunk and the engine's NLLs.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { onnx } from 'onnx-proto';

import { InvalidArgumentError, Model, StateError } from '../../../kernels';
import { exportOnnx } from '../../../kernels/onnx/export';
import { OnnxModel } from '../../../kernels/onnx/runtime';
import { checkpointOf, gpt2, maxDiff, tokens } from './fixtures';

async function rejects(p: Promise<unknown>, cls: new (...a: never[]) => Error, message: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.match((e as Error).message, message);
    return true;
  });
}

describe('OnnxModel', () => {
  let dir: string;
  let bytes: Uint8Array;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sieve-onnx-'));
    const m = Model.create(gpt2, { threads: 1, device: 'cpu' });
    m.init(1);
    bytes = exportOnnx(checkpointOf(m), { metadata: {} });
    m.dispose();
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('vocab and context come from the metadata; a file loads like bytes', async () => {
    const file = join(dir, 'model.onnx');
    await writeFile(file, bytes);
    const model = await OnnxModel.create(file, { threads: 1 });
    try {
      assert.equal(model.vocab, gpt2.vocab);
      assert.equal(model.context, gpt2.context);
      assert.equal((await model.logits(tokens(3, 64), 1, 3)).length, 3 * 64);
    } finally {
      model.dispose();
    }
  });

  test("argument checks, in the engine's words", async () => {
    const model = await OnnxModel.create(bytes, { threads: 1 });
    try {
      const x = tokens(2 * 8, 64);
      const bad = x.slice();
      bad[5] = 64;
      await rejects(model.logits(bad, 2, 8), InvalidArgumentError, /^tokens\[5\] = 64 is not a token id of this model \(vocab 64\)$/);
      bad[5] = -1;
      await rejects(model.evalNll(bad, 2, 8), InvalidArgumentError, /^tokens\[5\] = -1 is not a token id of this model \(vocab 64\)$/);
      await rejects(model.logits(tokens(66, 64), 2, 33), InvalidArgumentError, /^T = 33 exceeds the model's context \(32\)$/);
      await rejects(model.evalNll(tokens(66, 64), 2, 33), InvalidArgumentError, /^T = 33 exceeds the model's context \(32\)$/);
      await rejects(model.evalNll(tokens(2, 64), 2, 1), InvalidArgumentError, /^Expected an integer >= 2 for T but received 1$/);
      await rejects(model.logits(x, 0, 8), InvalidArgumentError, /^Expected an integer >= 1 for B but received 0$/);
      await rejects(model.logits(x.subarray(1), 2, 8), InvalidArgumentError, /^Expected an Int32Array of B\*T = 16 elements for tokens but received an Int32Array of 15 elements$/);
      await rejects(OnnxModel.create(bytes, { threads: 0 }), InvalidArgumentError, /^Expected an integer >= 1 for options.threads but received 0$/);
    } finally {
      model.dispose();
    }
  });

  test('a model without sieve.config is refused, naming the file', async () => {
    const stripped = onnx.ModelProto.decode(bytes);
    stripped.metadataProps = stripped.metadataProps.filter((p) => p.key !== 'sieve.config');
    const file = join(dir, 'foreign.onnx');
    await writeFile(file, onnx.ModelProto.encode(stripped).finish());
    await assert.rejects(OnnxModel.create(file, { threads: 1 }), new Error(`${file} has no "sieve.config" metadata: it is not a model exported by sieve (kernels/onnx/export.ts)`));
    const garbage = join(dir, 'garbage.onnx');
    await writeFile(garbage, 'not a model');
    await assert.rejects(OnnxModel.create(garbage, { threads: 1 }), new RegExp(`^Error: ${garbage} is not an ONNX model: `));
  });

  test('dispose releases the session; later calls are refused', async () => {
    const model = await OnnxModel.create(bytes, { threads: 1 });
    model.dispose();
    await rejects(model.logits(tokens(4, 64), 1, 4), StateError, /^model has been disposed$/);
    await rejects(model.evalNll(tokens(4, 64), 1, 4), StateError, /^model has been disposed$/);
  });

  test('evalNll at vocab 50257: windows in bounded chunks, progress per chunk, the engine NLLs', async (t) => {
    // 2^22 logits per chunk hold 2 windows of 32 × 50257: 5 windows run as 2 + 2 + 1
    const config = { ...gpt2, layers: 1, dim: 8, heads: 2, mlpHidden: 16, vocab: 50257 };
    const m = Model.create(config, { threads: 1, device: 'cpu' });
    m.init(2);
    const model = await OnnxModel.create(exportOnnx(checkpointOf(m), { metadata: {} }), { threads: 1 });
    try {
      const B = 5;
      const T = 32;
      const x = tokens(B * T, config.vocab, 9);
      const progress: [number, number][] = [];
      const ours = await model.evalNll(x, B, T, (done, total) => progress.push([done, total]));
      assert.deepEqual(progress, [[2, 5], [4, 5], [5, 5]]);
      const d = maxDiff(ours, await m.evalNll(x, B, T));
      t.diagnostic(`max |ΔNLL| ${d.abs.toExponential(2)} (NLLs near ln 50257 = 10.8)`);
      // measured 9.5e-7, one float32 ulp at 10.8; bound 4 ulps
      assert.ok(d.abs <= 4e-6, `NLLs differ by ${d.abs}`);
    } finally {
      model.dispose();
      m.dispose();
    }
  });
});
