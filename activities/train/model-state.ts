// Between the recipe, the engine and checkpoints: the engine config a recipe's `model:` section
// denotes, and moving a model's whole training state into and out of a checkpoint file.

import { loadCheckpoint, saveCheckpoint, type CheckpointState } from '../../kernels/checkpoint';
import { Model, type ModelConfig } from '../../kernels';
import type { Recipe } from '../../schemas/recipe';
import { getTokenizer } from '../data/tokenizer';
import type { LoopState, StepRecord } from './loop';

const NORM_EPS = 1e-5;
const ROPE_THETA = 10000;

export function engineConfig(model: Recipe['model']): ModelConfig {
  return {
    family: model.family,
    layers: model.layers,
    dim: model.dim,
    heads: model.heads,
    context: model.context,
    vocab: getTokenizer(model.tokenizer).vocabSize,
    mlpHidden: Math.round(model.mlpRatio * model.dim),
    normEps: NORM_EPS,
    ropeTheta: model.family === 'llama' ? ROPE_THETA : null,
  };
}

/** Everything needed to continue training bit-exactly: weights, moments, step, sampler, history. */
export async function writeTrainingCheckpoint(file: string, model: Model, state: LoopState, extra: Record<string, string> = {}) {
  const checkpoint: CheckpointState = {
    config: model.config,
    tensors: model.tensors.map(({ name, offset, size, shape }) => ({ name, offset, size, shape: [...shape] })),
    // copies of the engine's buffers; masks never written read as all ones (stored as nothing)
    params: model.read('param'),
    adamM: model.read('m'),
    adamV: model.read('v'),
    masks: model.read('mask'),
    step: model.step,
    rng: state.sampler,
    data: { stageStep: state.step },
    extra: { ...extra, history: JSON.stringify(state.history) },
  };
  return saveCheckpoint(file, checkpoint);
}

/** Loads a checkpoint into `model` (which must have the same config) and returns the loop state it holds. */
export async function readTrainingCheckpoint(file: string, model: Model): Promise<{ state: LoopState | null; modelStep: number }> {
  const ckpt = await loadCheckpoint(file, { config: model.config, tensors: model.tensors.map(({ name, offset, size, shape }) => ({ name, offset, size, shape: [...shape] })) });
  model.write('param', ckpt.params);
  if (ckpt.adamM) model.write('m', ckpt.adamM);
  if (ckpt.adamV) model.write('v', ckpt.adamV);
  if (ckpt.masks) model.write('mask', ckpt.masks);
  model.step = ckpt.step;
  const stageStep = (ckpt.data as { stageStep?: number } | null)?.stageStep;
  const history = ckpt.extra?.history ? (JSON.parse(ckpt.extra.history) as StepRecord[]) : [];
  const state = typeof stageStep === 'number' ? { step: stageStep, sampler: ckpt.rng as LoopState['sampler'], history } : null;
  return { state, modelStep: ckpt.step };
}
