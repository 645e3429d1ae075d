// How much a quantization step Δw changes the calibration loss F, predicted three ways (METHODS.md
// §6.1–§6.2) and measured:
//   gradient  gᵀΔw, g = ∇F at w;
//   taylor2   gᵀΔw + ½ Σ_i F_ii Δw_i², F_ii = the empirical Fisher diagonal, the mean over
//             calibration windows of each window's squared gradient;
//   pqi       Σ_i Δw_i ∫₀¹ ∂F/∂w_i(w + sΔw) ds by the right-endpoint rule with N intervals
//             (s_k = k/N): it samples the quantized end, and converges like 1/N (§6.2's table).
// Per element (the predictions' terms), per layer (the layer's terms along the whole-model path;
// and, with `perLayer`, the prediction and the actual ΔL when that layer alone is quantized) and
// for the whole model (the prediction against the actual F(w + Δw) − F(w)).
//
// The model computes with its parameters as they are (no seams set); every parameter this module
// moves is written back bit for bit before it returns.
import type { Model } from '../../kernels';
import type { Sensitivity } from '../../schemas/stages/quantize';
import { calibrationSlice, type Calibration } from './calibration';
import { quadrature } from './quadrature';

export type SensitivityMetric = Exclude<Sensitivity, 'none'>;

export interface LayerSensitivity {
  name: string;
  /** The layer's share of the whole-model prediction: the sum of its elements' terms. */
  predicted: number;
  /** With `perLayer`: the prediction when this layer alone is quantized (for pqi, its own path integral). */
  predictedAlone: number | null;
  /** With `perLayer`: F with this layer alone quantized, minus F(w). */
  actualAlone: number | null;
}

export interface SensitivityResult {
  metric: SensitivityMetric;
  /** N for pqi, else null. */
  intervals: number | null;
  /** Per element, in each weight's layout. */
  elements: Map<string, Float32Array>;
  layers: LayerSensitivity[];
  model: { predicted: number; actual: number; lossBefore: number; lossAfter: number };
}

export interface SensitivityOptions {
  metric: SensitivityMetric;
  intervals: number;
  /** Windows per forward pass. */
  micro: number;
  perLayer: boolean;
  /** Called after each unit of work with (done, total). */
  progress: (done: number, total: number) => void;
}

/** The mean cross-entropy over every calibration window; its gradient is left in the grads buffer. */
export async function calibrationLoss(model: Model, c: Calibration, micro: number): Promise<number> {
  model.zeroGrad();
  let sum = 0;
  for (let first = 0; first < c.windows; first += micro) {
    const B = Math.min(micro, c.windows - first);
    const { inputs, targets } = calibrationSlice(c, first, B);
    // Every window predicts all of its tokens, so the mean is the windows' means weighted by count.
    const r = await model.forwardBackward(inputs, targets, B, c.context, { lossScale: B / c.windows, teacherLogits: null, kd: null });
    sum += r.loss * B;
  }
  return sum / c.windows;
}

/** F with the listed weights moved to w + Δw, the rest as they are; the weights are restored. */
async function lossMoved(model: Model, c: Calibration, micro: number, names: readonly string[], weights: ReadonlyMap<string, Float32Array>, deltas: ReadonlyMap<string, Float32Array>): Promise<number> {
  try {
    for (const name of names) model.writeTensor(name, add(weights.get(name)!, deltas.get(name)!));
    return await calibrationLoss(model, c, micro);
  } finally {
    for (const name of names) model.writeTensor(name, weights.get(name)!);
  }
}

function add(w: Float32Array, delta: Float32Array): Float32Array {
  const out = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) out[i] = w[i] + delta[i];
  return out;
}

const sum = (values: ArrayLike<number>) => {
  let total = 0;
  for (let i = 0; i < values.length; i++) total += values[i];
  return total;
};

/**
 * The sensitivity of `names` to moving from their weights `weights` (the model's current
 * parameters) by `deltas`. See the file header for the metrics.
 */
export async function measureSensitivity(
  model: Model,
  names: readonly string[],
  weights: ReadonlyMap<string, Float32Array>,
  deltas: ReadonlyMap<string, Float32Array>,
  c: Calibration,
  options: SensitivityOptions,
): Promise<SensitivityResult> {
  const { metric, micro } = options;
  const total = (metric === 'taylor2' ? c.windows : 0) + (metric === 'pqi' ? options.intervals : 0) + 2 + (options.perLayer ? names.length * (metric === 'pqi' ? options.intervals + 1 : 1) : 0);
  let done = 0;
  const tick = (units = 1) => options.progress((done += units), total);

  let elements: Map<string, Float32Array>;
  let lossBefore: number;
  let lossAfter: number;
  if (metric === 'pqi') {
    const r = await pathIntegral(model, names, deltas, c, options.intervals, micro);
    elements = r.elements;
    [lossBefore, lossAfter] = [r.lossBefore, r.lossAfter];
    tick(options.intervals + 2);
  } else {
    lossBefore = await calibrationLoss(model, c, micro);
    const gradient = new Map(names.map((name) => [name, model.readTensor(name, 'grad')]));
    tick();
    const fisher = metric === 'taylor2' ? await fisherDiagonal(model, names, c, tick) : null;
    elements = new Map(
      names.map((name) => {
        const g = gradient.get(name)!;
        const d = deltas.get(name)!;
        const f = fisher?.get(name);
        return [name, Float32Array.from(d, (di, i) => g[i] * di + (f ? 0.5 * f[i] * di * di : 0))];
      }),
    );
    lossAfter = await lossMoved(model, c, micro, names, weights, deltas);
    tick();
  }

  const layers: LayerSensitivity[] = [];
  for (const name of names) {
    const predicted = sum(elements.get(name)!);
    if (!options.perLayer) {
      layers.push({ name, predicted, predictedAlone: null, actualAlone: null });
      continue;
    }
    let predictedAlone = predicted;
    if (metric === 'pqi') {
      predictedAlone = sum((await pathIntegral(model, [name], deltas, c, options.intervals, micro)).elements.get(name)!);
      tick(options.intervals);
    }
    const actualAlone = (await lossMoved(model, c, micro, [name], weights, deltas)) - lossBefore;
    tick();
    layers.push({ name, predicted, predictedAlone, actualAlone });
  }
  return {
    metric,
    intervals: metric === 'pqi' ? options.intervals : null,
    elements,
    layers,
    model: { predicted: layers.reduce((a, l) => a + l.predicted, 0), actual: lossAfter - lossBefore, lossBefore, lossAfter },
  };
}

/** PQI per element along the straight path from w to w + Δw (the engine's native integral). */
async function pathIntegral(model: Model, names: readonly string[], deltas: ReadonlyMap<string, Float32Array>, c: Calibration, intervals: number, micro: number) {
  const r = await model.postQuantIntegral([...names], names.map((n) => deltas.get(n)!), quadrature(intervals, 'right'), c.inputs, c.targets, c.windows, c.context, micro);
  return { elements: new Map(names.map((name, i) => [name, Float32Array.from(r.pqi[i])])), lossBefore: r.lossBefore, lossAfter: r.lossAfter };
}

/** The empirical Fisher diagonal: the mean over windows of each window's squared loss gradient. */
async function fisherDiagonal(model: Model, names: readonly string[], c: Calibration, tick: () => void): Promise<Map<string, Float64Array>> {
  const fisher = new Map(names.map((name) => [name, new Float64Array(model.info(name).size)]));
  for (let m = 0; m < c.windows; m++) {
    const { inputs, targets } = calibrationSlice(c, m, 1);
    model.zeroGrad();
    await model.forwardBackward(inputs, targets, 1, c.context, { lossScale: 1, teacherLogits: null, kd: null });
    for (const name of names) {
      const g = model.readTensor(name, 'grad');
      const f = fisher.get(name)!;
      for (let i = 0; i < g.length; i++) f[i] += (g[i] * g[i]) / c.windows;
    }
    tick();
  }
  return fisher;
}
