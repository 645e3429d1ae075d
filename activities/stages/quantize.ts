// The `quantize` stage: weight-only quantization of the in-scope block linear weights of its input
// model (METHODS.md §6; our choices where the papers are silent: docs/quantization.md).
//
//   1. The weights quantized are the model's effective ones, param ⊙ mask: a 2:4 model's zeros are
//      held at exactly zero throughout and stay out of every group's range.
//   2. Calibration windows from the training split (when anything needs them): GPTQ's Hessians
//      and ReQuant's outlier objective come from the engine's input Hessians; the sensitivity and
//      ReQuant's significance from the calibration loss.
//   3. The base quantizer (RTN or GPTQ) gives Δw = Q(w) − w; with `sensitivity`, the report of how
//      much Δw changes the loss, predicted and measured, per element, per layer and for the model.
//   4. ReQuant: outliers allotted per layer under the r_o budget and held out of the dense part,
//      re-quantized; then `rounds` rounds that each detach the weights with the largest positive PQI
//      of the current quantized model. Detached weights are kept as 16-bit sparse sets.
//   5. The output checkpoint holds the weights the model computes with, (code − zero)·scale with the
//      sparse values written over them, and the payload (codes, scales, zero points, sparse sets).
//
// Nothing is checkpointed midway (the stage is one pass of minutes); a retry starts over, and the
// sensitivity and PQI it already computed are found in the store under their content keys.
// Its definition: schemas/stages/quantize.ts.

import { stageSeed } from '../../schemas/fields';
import { type Device, type Model, type QuantizedWeight } from '../../kernels';
import { readCheckpointInfo, saveCheckpoint, type QuantizedTensor } from '../../kernels/checkpoint';
import { needsCalibration, type Quantize } from '../../schemas/stages/quantize';
import { badInput, dataReadBy, inputModel, type StageRun } from '../compute';
import { resolveData } from '../data/splits';
import { calibrationWindows, type Calibration } from '../quant/calibration';
import { bytesSha256, derivedKey, derivedTensors } from '../quant/derived';
import { allocateOutliers, largestWeights } from '../quant/outliers';
import { quadrature } from '../quant/quadrature';
import { EMPTY_SPARSE, finalWeight, layerBits, layerError, mergeSparse, quantizeLayer, sparseSetOf, type BaseQuantizer, type Layer, type SparseSet } from '../quant/quantizer';
import { calibrationLoss, measureSensitivity, type SensitivityResult } from '../quant/sensitivity';
import type { StageContext } from '../stage-context';
import { modelFromCheckpoint, trainingCheckpointState } from '../train/model-state';
import { requireTwoFour, sparseWeights } from '../train/sparsity';
import { writeToStore } from '../train/stage';

/** Calibration windows per forward + backward pass. */
const MICRO = 8;

/** One in-scope weight on its way through the stage. */
interface LayerState {
  layer: Layer;
  /** Positions held at zero in the dense part: pruned, outliers, significant weights. */
  held: Uint8Array | null;
  quantized: QuantizedWeight;
  outliers: SparseSet;
  significant: SparseSet;
}

export const quantize: StageRun<'quantize'> = async (deps, ctx, task, stage) => {
  const began = performance.now();
  const { recipe } = task;
  const file = await inputModel(deps, task, stage.from);
  if ((await readCheckpointInfo(file)).quant) throw badInput(new Error(`stage ${stage.id}: the model of stage ${stage.from} is already quantized`));
  const modelSha = task.inputs[stage.from].artifacts.find((a) => a.role === 'model')!.sha256;
  const model = await modelFromCheckpoint(file, { threads: deps.threads, device: recipe.device });
  ctx.onCancel(() => model.cancel());
  const progress = new Progress(ctx);
  try {
    const names = sparseWeights(model, stage.scope);
    for (const name of names) {
      const cols = model.info(name).shape[1];
      if (cols % stage.group !== 0) throw badInput(new Error(`stage ${stage.id}: \`group\` (${stage.group}) does not divide the ${cols} input columns of ${name}`));
    }
    const calibration = needsCalibration(stage) ? calibrationOf(stage, recipe, model.config.context) : null;
    const layers = names.map((name) => effectiveLayer(model, name));
    // The model computes with exactly the weights being quantized.
    for (const layer of layers) model.writeTensor(layer.name, layer.weight);

    if (calibration && (stage.method === 'gptq' || stage.requant)) {
      const hessians = await model.inputHessians(names, calibration.inputs, calibration.windows, calibration.context, progress.phase());
      layers.forEach((layer, i) => (layer.hessian = hessians[i]));
    }
    const base: BaseQuantizer = {
      spec: { bits: stage.bits, group: stage.group, symmetric: stage.symmetric },
      method: stage.method,
      gptq: stage.method === 'gptq' ? { damp: stage.gptq!.damp, actOrder: stage.gptq!.actOrder } : null,
      device: recipe.device,
    };
    const total = layers.reduce((n, l) => n + l.weight.length, 0);
    const metrics: Record<string, number> = {};
    if (calibration) metrics['quant/calibration_loss_before'] = await calibrationLoss(model, calibration, Math.min(MICRO, calibration.windows));
    const artifacts: Awaited<ReturnType<StageRun<'quantize'>>>['artifacts'] = [];

    // the base quantizer, and what it does to the loss
    let states = await quantizeAll(layers, base, new Map(), progress.phase());
    checkCancelled(ctx);
    if (stage.sensitivity !== 'none') {
      const report = await sensitivityReport(deps, model, stage, modelSha, states, calibration!, progress);
      artifacts.push({ sha256: report.sha256, bytes: report.bytes, kind: 'sensitivity', role: 'sensitivity' });
      Object.assign(metrics, sensitivityMetrics(stage.sensitivity, report.result));
    }

    // ReQuant
    if (stage.requant) {
      const outlierBudget = Math.floor(stage.requant.outliers * total);
      const counts = outlierBudget > 0 ? await allocateOutliers(layers, base, stage.requant.outliers, outlierBudget, progress.units(layers.length)) : new Map<string, number>();
      const outliers = new Map(layers.map((l) => [l.name, largestWeights(l, counts.get(l.name) ?? 0)]));
      states = await quantizeAll(layers, base, outliers, progress.phase());
      checkCancelled(ctx);
      const budget = Math.floor(stage.requant.significant * total);
      for (let round = 1; round <= stage.requant.rounds && budget > 0; round++) {
        const take = Math.floor((budget * round) / stage.requant.rounds) - Math.floor((budget * (round - 1)) / stage.requant.rounds);
        const pqi = await roundPqi(deps, model, stage, modelSha, states, calibration!, progress.phase());
        const picked = mostSignificant(states, pqi, take);
        states = await Promise.all(states.map((s) => detachSignificant(s, picked.get(s.layer.name) ?? [], base)));
        checkCancelled(ctx);
      }
      const entries = (pick: (s: LayerState) => SparseSet) => states.reduce((n, s) => n + pick(s).index.length, 0);
      Object.assign(metrics, {
        'quant/outliers': entries((s) => s.outliers),
        'quant/significant': entries((s) => s.significant),
        'quant/sparse_ratio': (entries((s) => s.outliers) + entries((s) => s.significant)) / total,
      });
    }

    // the model as it computes from now on
    const payload: QuantizedTensor[] = [];
    let bits = 0;
    let outputError = 0;
    for (const s of states) {
      const sparse = mergeSparse(s.outliers, s.significant);
      const weight = finalWeight(s.quantized, sparse, base.device);
      model.writeTensor(s.layer.name, weight);
      payload.push({ name: s.layer.name, codes: s.quantized.codes, scales: s.quantized.scales, zeros: s.quantized.zeros, sparse });
      bits += layerBits(s.layer, base.spec, sparse.index.length);
      if (s.layer.hessian) outputError += layerError(s.layer, weight);
    }
    const pruned = layers.filter((l) => l.pruned).map((l) => l.name);
    requireTwoFour(model, pruned, false);
    metrics['quant/bits_per_weight'] = bits / total;
    metrics['quant/weights'] = total;
    if (layers.every((l) => l.hessian)) metrics['quant/output_error'] = outputError;
    if (calibration) metrics['quant/calibration_loss'] = await calibrationLoss(model, calibration, Math.min(MICRO, calibration.windows));

    const state = { ...trainingCheckpointState(model, null, null, null), adamM: undefined, adamV: undefined };
    const stored = await writeToStore(deps, (out) =>
      saveCheckpoint(out, { ...state, quant: { settings: { bits: stage.bits, group: stage.group, symmetric: stage.symmetric, method: stage.method }, tensors: payload } }),
    );
    artifacts.unshift({ sha256: stored.sha256, bytes: stored.bytes, kind: 'checkpoint', role: 'model' });
    return { artifacts, metrics, computeMs: performance.now() - began, events: [] };
  } finally {
    model.dispose();
  }
};

function checkCancelled(ctx: StageContext) {
  if (ctx.isCancelled()) ctx.throwCancelled();
}

function calibrationOf(stage: Quantize, recipe: Parameters<typeof dataReadBy>[1], context: number): Calibration {
  let train: Int32Array;
  try {
    train = resolveData(dataReadBy(stage, recipe), { tokenizer: recipe.model.tokenizer, context }).train.tokens;
  } catch (err) {
    throw badInput(err);
  }
  return calibrationWindows(train, stage.calibration, context, stageSeed(stage, recipe));
}

/** The weight as the model computes with it (param ⊙ mask), and its pruned positions (none: null). */
function effectiveLayer(model: Model, name: string): Layer {
  const [rows, cols] = model.info(name).shape;
  const weight = model.readTensor(name, 'param');
  const mask = model.readTensor(name, 'mask');
  let pruned: Uint8Array | null = null;
  for (let i = 0; i < mask.length; i++) {
    if (mask[i] !== 0) continue;
    pruned ??= new Uint8Array(mask.length);
    pruned[i] = 1;
    weight[i] = 0;
  }
  return { name, rows, cols, weight, pruned, hessian: null };
}

/** Every layer through the base quantizer with its pruned positions and its `outliers` held out (those kept in 16 bits). */
async function quantizeAll(layers: readonly Layer[], base: BaseQuantizer, outliers: ReadonlyMap<string, number[]>, onLayer: (done: number, total: number) => void): Promise<LayerState[]> {
  const out: LayerState[] = [];
  for (const layer of layers) {
    const positions = outliers.get(layer.name) ?? [];
    const held = holdOut(layer, positions);
    out.push({ layer, held, quantized: await quantizeLayer(layer, base, held), outliers: positions.length ? sparseSetOf(layer, positions) : EMPTY_SPARSE, significant: EMPTY_SPARSE });
    onLayer(out.length, layers.length);
  }
  return out;
}

function holdOut(layer: Layer, positions: readonly number[], from: Uint8Array | null = layer.pruned): Uint8Array | null {
  if (positions.length === 0) return from;
  const held = from ? Uint8Array.from(from) : new Uint8Array(layer.weight.length);
  for (const i of positions) held[i] = 1;
  return held;
}

async function detachSignificant(s: LayerState, positions: readonly number[], base: BaseQuantizer): Promise<LayerState> {
  if (positions.length === 0) return s;
  const held = holdOut(s.layer, positions, s.held);
  return { ...s, held, quantized: await quantizeLayer(s.layer, base, held), significant: mergeSparse(s.significant, sparseSetOf(s.layer, positions)) };
}

/** Δw of each layer: the weight it computes with now, minus the weight before quantization. */
function deltasOf(states: readonly LayerState[], device: Device): Map<string, Float32Array> {
  return new Map(
    states.map((s) => {
      const q = finalWeight(s.quantized, mergeSparse(s.outliers, s.significant), device);
      return [s.layer.name, Float32Array.from(q, (v, i) => v - s.layer.weight[i])];
    }),
  );
}

/**
 * The `take` weights with the largest positive PQI that are neither pruned nor detached yet,
 * over all layers (ties: earlier layer, lower index). A weight with PQI ≤ 0 lowered the loss by
 * being quantized; restoring it cannot help on the calibration data, so it is never taken.
 */
function mostSignificant(states: readonly LayerState[], pqi: Map<string, Float32Array>, take: number): Map<string, number[]> {
  const candidates: { layer: number; index: number; value: number }[] = [];
  states.forEach((s, layer) => {
    const values = pqi.get(s.layer.name)!;
    for (let index = 0; index < values.length; index++) {
      if (values[index] > 0 && !s.held?.[index]) candidates.push({ layer, index, value: values[index] });
    }
  });
  candidates.sort((a, b) => b.value - a.value || a.layer - b.layer || a.index - b.index);
  const picked = new Map<string, number[]>();
  for (const c of candidates.slice(0, take)) {
    const name = states[c.layer].layer.name;
    picked.set(name, [...(picked.get(name) ?? []), c.index]);
  }
  return picked;
}

/** PQI of the current quantized model (right endpoints, `intervals`), from the store when already computed. */
async function roundPqi(deps: Parameters<StageRun<'quantize'>>[0], model: Model, stage: Quantize, modelSha: string, states: readonly LayerState[], c: Calibration, onProgress: (done: number, total: number) => void) {
  const deltas = deltasOf(states, model.device);
  const names = states.map((s) => s.layer.name);
  const key = derivedKey({ kind: 'pqi', model: modelSha, names, intervals: stage.intervals, calibration: c.sha256, micro: Math.min(MICRO, c.windows) }, [...deltas.values()]);
  const result = await derivedTensors(deps, key, async () => {
    const r = await model.postQuantIntegral(names, [...deltas.values()], quadrature(stage.intervals, 'right'), c.inputs, c.targets, c.windows, c.context, Math.min(MICRO, c.windows), onProgress);
    return { tensors: new Map(names.map((n, i) => [n, Float32Array.from(r.pqi[i])])), meta: { lossBefore: r.lossBefore, lossAfter: r.lossAfter } };
  });
  return result.tensors;
}

/** The sensitivity of the base quantization step, from the store when another stage (or attempt) computed it. */
async function sensitivityReport(deps: Parameters<StageRun<'quantize'>>[0], model: Model, stage: Quantize, modelSha: string, states: readonly LayerState[], c: Calibration, progress: Progress) {
  const metric = stage.sensitivity as Exclude<Quantize['sensitivity'], 'none'>;
  const deltas = deltasOf(states, model.device);
  const names = states.map((s) => s.layer.name);
  const micro = Math.min(MICRO, c.windows);
  const key = derivedKey(
    { kind: 'sensitivity', model: modelSha, names, metric, intervals: metric === 'pqi' ? stage.intervals : null, calibration: c.sha256, micro, deltas: bytesSha256([...deltas.values()]) },
  );
  const weights = new Map(states.map((s) => [s.layer.name, s.layer.weight]));
  const stored = await derivedTensors(deps, key, async () => {
    const r = await measureSensitivity(model, names, weights, deltas, c, { metric, intervals: stage.intervals, micro, perLayer: true, progress: progress.phase() });
    return {
      tensors: r.elements,
      meta: { format: 'sieve-sensitivity', version: 1, metric, intervals: r.intervals, rule: metric === 'pqi' ? 'right' : null, calibration: { windows: c.windows, context: c.context, sha256: c.sha256 }, layers: r.layers, model: r.model },
    };
  });
  const meta = stored.meta as Pick<SensitivityResult, 'layers' | 'model' | 'intervals'>;
  const result: SensitivityResult = { metric, intervals: meta.intervals, elements: stored.tensors, layers: meta.layers, model: meta.model };
  return { result, sha256: stored.sha256, bytes: stored.bytes };
}

/** `sensitivity/<metric>/{predicted,actual}` for the model, and per layer alone. */
function sensitivityMetrics(metric: string, r: SensitivityResult): Record<string, number> {
  const m: Record<string, number> = {
    [`sensitivity/${metric}/predicted`]: r.model.predicted,
    [`sensitivity/${metric}/actual`]: r.model.actual,
  };
  for (const l of r.layers) {
    if (l.predictedAlone !== null) m[`sensitivity/${metric}/predicted/${l.name}`] = l.predictedAlone;
    if (l.actualAlone !== null) m[`sensitivity/${metric}/actual/${l.name}`] = l.actualAlone;
  }
  return m;
}

/**
 * Heartbeats in per-mille of the stage: the phases are of unknown relative cost ahead of time, so
 * each reports its own fraction and the heartbeat shows the phase's progress within the stage's.
 */
class Progress {
  #phase = 0;
  constructor(private readonly ctx: StageContext) {}

  /** A callback for the next phase's (done, total). */
  phase(): (done: number, total: number) => void {
    const index = this.#phase++;
    return (done, total) => {
      const within = total > 0 ? Math.min(1, done / total) : 1;
      // each phase advances a fixed share of what is left, so the bar never runs backwards
      const step = Math.floor(1000 * (1 - Math.pow(0.5, index) * (1 - 0.5 * within)));
      this.ctx.heartbeat({ step, steps: 1000, loss: null, tokensPerSec: null, etaSec: null, checkpoint: null });
    };
  }

  /** A callback called once per unit of the next phase, of `total` units. */
  units(total: number): () => void {
    const report = this.phase();
    let done = 0;
    return () => report(++done, total);
  }
}
