// Between the recipe, the engine and checkpoints: the engine config a recipe's `model:` section
// denotes, and moving a model's training state into and out of a checkpoint file. A checkpoint
// holds state, not history: the loss history is named by reference (./history.ts), so every
// checkpoint of a stage has the same size.

import { loadCheckpoint, readCheckpointInfo, saveCheckpoint, type CheckpointState } from '../../kernels/checkpoint';
import { Model, type Device, type ModelConfig } from '../../kernels';
import type { SamplerState } from '../../schemas/data';
import { DEFAULT_ROPE_THETA, vocabSize } from '../../schemas/model';
import type { Recipe } from '../../schemas/recipe';
import { payloadWeights } from '../quant/quantizer';
import { History, type StepRecord } from './history';

export function engineConfig(model: Recipe['model']): ModelConfig {
  return {
    family: model.family,
    layers: model.layers,
    dim: model.dim,
    heads: model.heads,
    context: model.context,
    vocab: vocabOf(model),
    mlpHidden: Math.round(model.mlpRatio * model.dim),
    normEps: model.normEps,
    ropeTheta: model.family === 'llama' ? (model.ropeTheta ?? DEFAULT_ROPE_THETA) : null,
    adapters: null,
  };
}

function vocabOf(model: Recipe['model']): number {
  const vocab = vocabSize(model);
  // The CLI fills a tokenizer file's vocabulary in when it loads the recipe.
  if (vocab === null) throw new Error(`the vocabulary of ${JSON.stringify(model.tokenizer)} was never read: load the recipe through sieve`);
  return vocab;
}

/** Where a stage stood: its own step count and the sampler's position. */
export interface TrainingPosition {
  step: number;
  sampler: SamplerState;
}

/**
 * Where a checkpoint's loss history is: the history segment ending at its step, or (checkpoints
 * written before segments existed) the records themselves, stored inline.
 */
export type HistorySource = { segment: string } | { records: StepRecord[] };

/**
 * Everything needed to continue training bit-exactly: weights, moments, the optimizer's step,
 * the position, the history segment that ends at this step (null: the stage's final model,
 * whose history is the stage's `history` artifact), and the training method's own state (null:
 * none; for instance S-STE's β per tensor), as text.
 */
export async function writeTrainingCheckpoint(file: string, model: Model, position: TrainingPosition | null, historySegment: string | null, methodState: string | null) {
  return saveCheckpoint(file, trainingCheckpointState(model, position, historySegment, methodState));
}

/** The checkpoint writeTrainingCheckpoint saves, in memory (an export reads it as it is). */
export function trainingCheckpointState(model: Model, position: TrainingPosition | null, historySegment: string | null, methodState: string | null): CheckpointState {
  return {
    config: model.config,
    tensors: model.tensors.map(({ name, offset, size, shape }) => ({ name, offset, size, shape: [...shape] })),
    // copies of the engine's buffers; masks never written read as all ones (stored as nothing)
    params: model.read('param'),
    adamM: model.read('m'),
    adamV: model.read('v'),
    masks: model.read('mask'),
    step: model.step,
    // A model made by a stage that does not train (prune) has no training position.
    rng: position?.sampler ?? null,
    data: position ? { stageStep: position.step } : null,
    extra: {
      ...(historySegment === null ? {} : { historySegment }),
      ...(methodState === null ? {} : { methodState }),
    },
  };
}

/** A checkpoint read and checked against a model, not yet loaded into it. */
export interface TrainingCheckpoint {
  /** The training position it holds, or null (a model exported without one). */
  position: TrainingPosition | null;
  /** Its loss history's whereabouts; null when it names none (a stage's final model). */
  history: HistorySource | null;
  /** The optimizer step counter it holds. */
  modelStep: number;
  /** The training method's own state it holds, if any. */
  methodState: string | null;
  /** Writes its weights, moments, masks and step counter into the model. */
  applyTo(model: Model): void;
}

/** Reads a checkpoint that must fit `model` (same config and tensor table), without touching the model. */
export async function openTrainingCheckpoint(file: string, model: Model): Promise<TrainingCheckpoint> {
  const ckpt = await loadCheckpoint(file, { config: model.config, tensors: model.tensors.map(({ name, offset, size, shape }) => ({ name, offset, size, shape: [...shape] })) });
  if (ckpt.quant) checkPayload(file, ckpt);
  const stageStep = (ckpt.data as { stageStep?: number } | null)?.stageStep;
  const segment = ckpt.extra?.historySegment;
  const inline = ckpt.extra?.history;
  return {
    position: typeof stageStep === 'number' ? { step: stageStep, sampler: ckpt.rng as SamplerState } : null,
    history: segment !== undefined ? { segment } : inline !== undefined ? { records: History.parse(JSON.parse(inline)) } : null,
    modelStep: ckpt.step,
    methodState: ckpt.extra?.methodState ?? null,
    applyTo(target) {
      target.write('param', ckpt.params);
      if (ckpt.adamM) target.write('m', ckpt.adamM);
      if (ckpt.adamV) target.write('v', ckpt.adamV);
      if (ckpt.masks) target.write('mask', ckpt.masks);
      target.step = ckpt.step;
    },
  };
}

/**
 * A quantized model computes with exactly what its payload dequantizes to (as inference would);
 * weights that differ mean the file was altered after the quantize stage wrote it.
 */
function checkPayload(file: string, ckpt: CheckpointState): void {
  for (const [name, weight] of payloadWeights(ckpt)) {
    const t = ckpt.tensors.find((e) => e.name === name)!;
    const params = ckpt.params.subarray(t.offset, t.offset + t.size);
    const at = params.findIndex((v, i) => !Object.is(v, weight[i]));
    if (at >= 0) throw new Error(`${file}: weight ${name}[${at}] is ${params[at]}, but its quantized payload gives ${weight[at]}: the checkpoint was altered after it was written`);
  }
}

/** Loads a checkpoint into `model` (which must have the same config) and returns the position it holds. */
export async function readTrainingCheckpoint(file: string, model: Model): Promise<{ position: TrainingPosition | null; modelStep: number }> {
  const ckpt = await openTrainingCheckpoint(file, model);
  ckpt.applyTo(model);
  return { position: ckpt.position, modelStep: ckpt.modelStep };
}

/**
 * The engine config a checkpoint was written for: its own, since a stage's output may carry more
 * than the recipe's `model:` section says (SLoRB branches, say). Checkpoints written before
 * adapters existed have none.
 */
export async function checkpointConfig(file: string): Promise<ModelConfig> {
  const { config } = await readCheckpointInfo(file);
  return { ...(config as Omit<ModelConfig, 'adapters'>), adapters: (config as { adapters?: ModelConfig['adapters'] }).adapters ?? null };
}

/** A model built for a checkpoint's own config and loaded from it; the caller disposes of it. */
export async function modelFromCheckpoint(file: string, opts: { threads: number | null; device: Device }): Promise<Model> {
  const model = Model.create(await checkpointConfig(file), opts);
  try {
    await readTrainingCheckpoint(file, model);
    return model;
  } catch (err) {
    model.dispose();
    throw err;
  }
}
