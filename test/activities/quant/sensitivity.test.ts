// METHODS.md §6.4's checks of the post-quantization integral: the toy values of §6.2 for each
// quadrature rule, exactness and 1/N convergence on quadratics, and on a real model (the engine's
// native integral) the tiny-Δ limit, zero perturbation and additivity; with the engine's RTN and
// GPTQ through the TS API, and ReQuant's bookkeeping helpers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { dequantize, gptq, Model, quantizeRtn, type ModelConfig } from '../../../kernels';
import type { Calibration } from '../../../activities/quant/calibration';
import { allocateOutliers, largestWeights } from '../../../activities/quant/outliers';
import { quadrature, type QuadratureKind } from '../../../activities/quant/quadrature';
import { layerError, mergeSparse, type Layer } from '../../../activities/quant/quantizer';
import { calibrationLoss, measureSensitivity } from '../../../activities/quant/sensitivity';

/** Σ_i Δ_i Σ_k weight_k ∂F/∂w_i(w + s_k Δ), per element, for a gradient function in JS. */
function pqi(grad: (w: number[]) => number[], w: number[], delta: number[], intervals: number, kind: QuadratureKind): number[] {
  const { points, weights } = quadrature(intervals, kind);
  const out = w.map(() => 0);
  points.forEach((s, k) => {
    const g = grad(w.map((wi, i) => wi + s * delta[i]));
    g.forEach((gi, i) => (out[i] += weights[k] * gi * delta[i]));
  });
  return out;
}
const sum = (xs: ArrayLike<number>) => Array.from(xs).reduce((a, b) => a + b, 0);

describe('the quadrature rules on §6.2’s toy functions', () => {
  it('F(w) = (w − 1)⁴ from 1.0 to 1.5 (true ΔF 0.0625, Taylor 0)', () => {
    const grad = (w: number[]) => [4 * (w[0] - 1) ** 3];
    const value = (n: number, kind: QuadratureKind) => pqi(grad, [1], [0.5], n, kind)[0];
    assert.equal(value(4, 'right').toFixed(4), '0.0977');
    assert.equal(value(32, 'right').toFixed(4), '0.0665');
    assert.equal(value(4, 'left').toFixed(4), '0.0352');
    assert.equal(value(32, 'left').toFixed(4), '0.0587');
    assert.equal(value(4, 'midpoint').toFixed(4), '0.0605');
    assert.equal(value(32, 'midpoint').toFixed(5), '0.06247');
  });

  it('F(x, y) = ½x² + xy² + ¼y⁴ from (0.5, −0.2) to (0.75, 0): per element [0.16041, −0.02308]', () => {
    const grad = ([x, y]: number[]) => [x + y * y, 2 * x * y + y ** 3];
    const r = pqi(grad, [0.5, -0.2], [0.25, 0.2], 32, 'right');
    assert.deepEqual(r.map((v) => v.toFixed(5)), ['0.16041', '-0.02308']);
    assert.equal(sum(r).toFixed(5), '0.13732');
  });

  it('quadratics: the midpoint rule is exact, the right-endpoint error is ½ΔᵀAΔ/N', () => {
    const A = [[2, 0.5, 0], [0.5, 1, -0.3], [0, -0.3, 3]];
    const b = [0.1, -0.2, 0.3];
    const F = (w: number[]) => 0.5 * w.reduce((s, wi, i) => s + wi * A[i].reduce((t, a, j) => t + a * w[j], 0), 0) + w.reduce((s, wi, i) => s + b[i] * wi, 0);
    const grad = (w: number[]) => A.map((row, i) => row.reduce((t, a, j) => t + a * w[j], 0) + b[i]);
    const w = [0.3, -0.1, 0.2];
    const d = [0.2, 0.4, -0.1];
    const dF = F(w.map((wi, i) => wi + d[i])) - F(w);
    const curvature = 0.5 * d.reduce((s, di, i) => s + di * A[i].reduce((t, a, j) => t + a * d[j], 0), 0);
    for (const n of [1, 4, 32]) {
      assert.ok(Math.abs(sum(pqi(grad, w, d, n, 'midpoint')) - dF) < 1e-14);
      assert.ok(Math.abs(sum(pqi(grad, w, d, n, 'right')) - dF - curvature / n) < 1e-14);
    }
  });
});

describe('the engine’s post-quantization integral on a model', () => {
  const config: ModelConfig = { family: 'gpt2', layers: 2, dim: 16, heads: 2, context: 16, vocab: 40, mlpHidden: 32, normEps: 1e-5, ropeTheta: null, adapters: null };
  const names = ['blocks.0.attn.qkv.weight', 'blocks.1.mlp.fc.weight'];
  let model: Model;
  let calib: Calibration;
  let weights: Map<string, Float32Array>;
  let deltas: Map<string, Float32Array>;
  before(() => {
    model = Model.create(config, { threads: 1 });
    model.init(11);
    const windows = 6;
    const tokens = Int32Array.from({ length: windows * 17 }, (_, i) => (i * 7 + ((i * i) % 13)) % 40);
    const inputs = new Int32Array(windows * 16);
    const targets = new Int32Array(windows * 16);
    for (let b = 0; b < windows; b++) for (let t = 0; t < 16; t++) [inputs[b * 16 + t], targets[b * 16 + t]] = [tokens[b * 17 + t], tokens[b * 17 + t + 1]];
    calib = { inputs, targets, windows, context: 16, sha256: 'test' };
    weights = new Map(names.map((n) => [n, model.readTensor(n)]));
    // a 3-bit RTN step
    deltas = new Map(
      names.map((n) => {
        const [rows, cols] = model.info(n).shape;
        const q = dequantize(quantizeRtn(weights.get(n)!, rows, cols, { bits: 3, group: 8, symmetric: false }));
        return [n, Float32Array.from(q, (v, i) => v - weights.get(n)![i])];
      }),
    );
  });
  after(() => model.dispose());
  const integral = async (d: Map<string, Float32Array>, n: number) => model.postQuantIntegral(names, names.map((x) => d.get(x)!), quadrature(n, 'right'), calib.inputs, calib.targets, calib.windows, calib.context, 4);

  it('tiny Δ: Σ PQI is within 1% of gᵀΔw', async () => {
    const tiny = new Map([...deltas].map(([n, d]) => [n, d.map((v) => v * 1e-4)]));
    const r = await integral(tiny, 32);
    await calibrationLoss(model, calib, 4);
    let linear = 0;
    for (const n of names) {
      const g = model.readTensor(n, 'grad');
      tiny.get(n)!.forEach((d, i) => (linear += g[i] * d));
    }
    const total = sum(r.pqi.map(sum));
    assert.ok(Math.abs(total - linear) <= 0.01 * Math.abs(linear), `Σ PQI ${total} vs gᵀΔw ${linear}`);
  });

  it('zero perturbation: Δw_i = 0 gives PQI_i = 0; the weights come back bit for bit', async () => {
    const d = new Map([...deltas].map(([n, v]) => [n, v.map((x, i) => (i % 3 === 0 ? 0 : x))]));
    const before = names.map((n) => model.readTensor(n));
    const r = await integral(d, 8);
    r.pqi.forEach((p, l) => d.get(names[l])!.forEach((x, i) => x === 0 && assert.equal(p[i], 0)));
    names.forEach((n, l) => assert.deepEqual(model.readTensor(n), before[l]));
  });

  it('additivity: Σ PQI → ΔF with an error that halves as N doubles (right endpoints)', async () => {
    // a 2-bit step, large enough that the curvature error stands well above float32 noise
    const coarse = new Map(
      names.map((n) => {
        const [rows, cols] = model.info(n).shape;
        const q = dequantize(quantizeRtn(weights.get(n)!, rows, cols, { bits: 2, group: 16, symmetric: false }));
        return [n, Float32Array.from(q, (v, i) => 3 * (v - weights.get(n)![i]))];
      }),
    );
    const errors: number[] = [];
    let dF = 0;
    for (const n of [2, 4, 8, 16]) {
      const r = await integral(coarse, n);
      dF = r.lossAfter - r.lossBefore;
      errors.push(Math.abs(sum(r.pqi.map(sum)) - dF));
    }
    for (let k = 1; k < errors.length; k++) {
      const ratio = errors[k - 1] / errors[k];
      assert.ok(ratio > 1.6 && ratio < 2.5, `error ratio ${ratio} for N ${2 << (k - 1)} → ${2 << k} (errors ${errors}, ΔF ${dF})`);
    }
    assert.ok(errors[3] < 0.1 * Math.abs(dF), `error ${errors[3]} against ΔF ${dF}`);
  });

  it('measureSensitivity: per-layer predictions beside the actual ΔL of each layer alone', async () => {
    for (const metric of ['gradient', 'taylor2', 'pqi'] as const) {
      const r = await measureSensitivity(model, names, weights, deltas, calib, { metric, intervals: 16, micro: 4, perLayer: true, progress: () => {} });
      assert.equal(r.layers.length, 2);
      for (const l of r.layers) assert.ok(Number.isFinite(l.predictedAlone!) && Number.isFinite(l.actualAlone!));
      assert.ok(Math.abs(r.model.predicted - sum(r.layers.map((l) => l.predicted))) < 1e-9);
      names.forEach((n) => assert.deepEqual(model.readTensor(n), weights.get(n)!, 'the weights are restored'));
      if (metric === 'pqi') assert.ok(Math.abs(r.model.predicted - r.model.actual) < 0.1 * Math.abs(r.model.actual), `${r.model.predicted} vs ${r.model.actual}`);
    }
  });
});

describe('RTN and GPTQ through the TS API', () => {
  it('codes within range, dequantized within half a step, GPTQ at or below RTN on its calibration error', async () => {
    const rows = 8;
    const cols = 32;
    const w = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) + 0.1 * Math.cos(i * 0.3));
    const x = Float64Array.from({ length: 64 * cols }, (_, i) => Math.sin(i * 0.37) + ((i % cols) % 3) * Math.cos(Math.floor(i / cols)));
    const H = new Float64Array(cols * cols);
    for (let n = 0; n < 64; n++) for (let a = 0; a < cols; a++) for (let b = 0; b < cols; b++) H[a * cols + b] += x[n * cols + a] * x[n * cols + b];
    const layer: Layer = { name: 'w', rows, cols, weight: w, pruned: null, hessian: H };
    for (const bits of [2, 3, 4, 8] as const) {
      const spec = { bits, group: 16, symmetric: false };
      const rtn = quantizeRtn(w, rows, cols, spec);
      assert.ok(rtn.codes.every((c) => c < 2 ** bits));
      const back = dequantize(rtn);
      back.forEach((v, i) => assert.ok(Math.abs(v - w[i]) <= 0.5 * rtn.scales[Math.floor(i / 16)] * (1 + 1e-6), `within half a step at ${i}`));
      const g = await gptq(w, H, rows, cols, { ...spec, damp: 0.01, actOrder: false });
      assert.ok(layerError(layer, dequantize(g)) <= layerError(layer, back), `${bits} bits`);
    }
    await assert.rejects(gptq(w, H, rows, cols, { bits: 4, group: 5, symmetric: false, damp: 0.01, actOrder: false }), /group size 5 must divide cols = 32/);
    assert.throws(() => quantizeRtn(w, rows, cols, { bits: 5 as 4, group: 8, symmetric: false }), /2, 3, 4 or 8/);
  });
});

describe('ReQuant bookkeeping', () => {
  const layers: Layer[] = [0, 1, 2].map((l) => ({
    name: `l${l}`,
    rows: 4,
    cols: 16,
    weight: Float32Array.from({ length: 64 }, (_, i) => Math.sin(i * (l + 1.3)) * (i % 17 === l ? 8 : 1)),
    pruned: null,
    hessian: null,
  }));
  it('outliers stay within the budget, largest first', async () => {
    const counts = await allocateOutliers(layers, { spec: { bits: 3, group: 8, symmetric: false }, method: 'rtn', gptq: null, device: 'cpu' }, 0.05, 6);
    assert.ok(sum([...counts.values()]) <= 6);
    assert.ok(sum([...counts.values()]) > 0, 'large weights are worth detaching');
    const top = largestWeights(layers[0], 2);
    assert.ok(Math.abs(layers[0].weight[top[0]]) >= Math.abs(layers[0].weight[top[1]]));
  });
  it('overlapping sparse sets are refused', () => {
    const set = (index: number[]) => ({ index: Int32Array.from(index), values: new Uint16Array(index.length) });
    assert.deepEqual([...mergeSparse(set([5, 1]), set([3])).index], [1, 3, 5]);
    assert.throws(() => mergeSparse(set([1, 2]), set([2])), /overlap at index 2/);
  });
});
