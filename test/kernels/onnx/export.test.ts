// What exportOnnx writes, read back with onnx-proto: opset 17 and IR 8, the input and output (names,
// element types, symbolic and fixed dims), float32 weights stored transposed under the engine's
// names, the metadata (the caller's entries and sieve's own), standard ops of the default domain
// only; a checkpoint that does not fit its config is refused; twoFourShare; and a 10M-parameter
// model exports and runs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { onnx } from 'onnx-proto';

import { Model } from '../../../kernels';
import { exportOnnx } from '../../../kernels/onnx/export';
import { OnnxModel } from '../../../kernels/onnx/runtime';
import { twoFourShare } from '../../../kernels/onnx/sparsity';
import { checkpointOf, decodeExport, gpt2, initializerValues, linearWeights, llama, maxDiff, tokens } from './fixtures';

const { DataType } = onnx.TensorProto;

const dims = (info: onnx.IValueInfoProto) => info.type!.tensorType!.shape!.dim!.map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)));

function freshModel(config = gpt2): Model {
  const m = Model.create(config, { threads: 1, device: 'cpu' });
  m.init(1);
  return m;
}

describe('exportOnnx: the file', () => {
  for (const config of [gpt2, llama]) {
    test(`${config.family}: opset, IR, input, output, metadata`, () => {
      const m = freshModel(config);
      try {
        const { model, graph, metadata: meta } = decodeExport(exportOnnx(checkpointOf(m), { metadata: { 'sieve.run': 'r1', 'sieve.stage': 'export' } }));
        assert.equal(Number(model.irVersion), 8);
        assert.deepEqual(model.opsetImport.map((o) => [o.domain, Number(o.version)]), [['', 17]]);
        assert.deepEqual(graph.input.map((i) => i.name), ['input_ids']);
        assert.equal(graph.input[0].type!.tensorType!.elemType, DataType.INT64);
        assert.deepEqual(dims(graph.input[0]), ['batch', 'seq']);
        assert.deepEqual(graph.output.map((o) => o.name), ['logits']);
        assert.equal(graph.output[0].type!.tensorType!.elemType, DataType.FLOAT);
        assert.deepEqual(dims(graph.output[0]), ['batch', 'seq', config.vocab]);

        assert.equal(meta['sieve.run'], 'r1');
        assert.equal(meta['sieve.stage'], 'export');
        assert.equal(meta['sieve.family'], config.family);
        assert.deepEqual(JSON.parse(meta['sieve.config']), m.config);
        const sparsity = JSON.parse(meta['sieve.sparsity']);
        assert.deepEqual(Object.keys(sparsity.tensors), linearWeights(m));
        assert.equal(sparsity.share, 0, 'a dense init has no group with two zeros');

        // only standard ops of the default domain, and float32 throughout (bool: the causal mask; int64: shapes and axes)
        assert.ok(graph.node.every((n) => !n.domain), 'every node is in the default domain');
        const types = new Set(graph.initializer.map((i) => i.dataType));
        assert.deepEqual([...types].sort(), [DataType.FLOAT, DataType.INT64, DataType.BOOL].sort());
      } finally {
        m.dispose();
      }
    });
  }

  test('a linear weight is stored under its engine name, transposed to [in, out], with its float32 bits', () => {
    const m = freshModel(llama);
    try {
      const { graph } = decodeExport(exportOnnx(checkpointOf(m), { metadata: {} }));
      const name = 'blocks.1.mlp.down.weight';
      const [OC, IC] = m.info(name).shape;
      const { dims: stored, values } = initializerValues(graph, name);
      assert.deepEqual(stored, [IC, OC]);
      const engine = m.readTensor(name);
      for (let d = 0; d < OC; d++) for (let c = 0; c < IC; c++) assert.equal(values[c * OC + d], engine[d * IC + c]);
      // gpt2 ties its head to tok_emb: stored once; llama's lm_head is a weight of its own
      assert.ok(graph.initializer.some((i) => i.name === 'lm_head.weight'));
    } finally {
      m.dispose();
    }
  });

  test("the exporter's metadata keys are its own", () => {
    const m = freshModel();
    try {
      assert.throws(() => exportOnnx(checkpointOf(m), { metadata: { 'sieve.config': '{}' } }), /^Error: metadata key "sieve.config" is the exporter's own/);
    } finally {
      m.dispose();
    }
  });

  test('a checkpoint whose tensors do not fit its config is refused, naming the tensor', () => {
    const m = freshModel();
    try {
      const state = checkpointOf(m);
      const missing = { ...state, tensors: state.tensors.filter((t) => t.name !== 'blocks.1.attn.out.bias') };
      assert.throws(() => exportOnnx(missing, { metadata: {} }), /the checkpoint has no tensor "blocks.1.attn.out.bias", which a gpt2 model of its config needs/);
      const wider = { ...state, config: { ...state.config, mlpHidden: 64 } };
      assert.throws(() => exportOnnx(wider, { metadata: {} }), /tensor "blocks.0.mlp.fc.weight" is \[128, 32\] in the checkpoint, its config says \[64, 32\]/);
    } finally {
      m.dispose();
    }
  });

  test('a 10M-parameter model exports, loads and runs', async (t) => {
    const config = { ...gpt2, layers: 6, dim: 384, heads: 6, context: 128, vocab: 256, mlpHidden: 1536 };
    const m = freshModel(config);
    try {
      assert.ok(m.numParams >= 10e6, `${m.numParams} parameters`);
      const began = performance.now();
      const bytes = exportOnnx(checkpointOf(m), { metadata: {} });
      const exportMs = performance.now() - began;
      assert.ok(bytes.byteLength >= 4 * 10e6, `${bytes.byteLength} bytes`);
      const exported = await OnnxModel.create(bytes, { threads: 1 });
      try {
        const x = tokens(16, config.vocab);
        const d = maxDiff(await exported.logits(x, 1, 16), await m.logits(x, 1, 16));
        t.diagnostic(`${m.numParams} parameters, ${bytes.byteLength} bytes, exported in ${exportMs.toFixed(0)} ms; max |Δlogit| ${d.abs.toExponential(2)} (relative ${d.rel.toExponential(2)})`);
        // measured 8.5e-7 relative (longer sums than the small models' 5e-7); bound 4e-6
        assert.ok(d.rel <= 4e-6, `logits differ by ${d.rel} relative`);
      } finally {
        exported.dispose();
      }
    } finally {
      m.dispose();
    }
  });
});

describe('twoFourShare', () => {
  test('the share of groups of 4 consecutive inputs with at most 2 non-zeros', () => {
    // row 0: [1 0 2 0 | 1 1 1 0]; row 1: [0 0 0 0 | NaN 0 -0 3]
    const w = new Float32Array([1, 0, 2, 0, 1, 1, 1, 0, 0, 0, 0, 0, NaN, 0, -0, 3]);
    assert.equal(twoFourShare(w, 2, 8), 3 / 4);
    assert.equal(twoFourShare(new Float32Array([0, 5, 0, 5]), 1, 4), 1);
    // groups run along a row, not down a column
    assert.equal(twoFourShare(new Float32Array([1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0]), 4, 4), 1);
    assert.equal(twoFourShare(new Float32Array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 4, 4), 3 / 4);
  });

  test('refuses a shape that does not fit or has no groups of 4', () => {
    assert.throws(() => twoFourShare(new Float32Array(8), 2, 3), /a \[2, 3\] weight needs 6 values, got 8/);
    assert.throws(() => twoFourShare(new Float32Array(6), 1, 6), /6 is not a multiple of 4/);
  });
});
