// The `sparse-train` stage: training towards, or with, 2:4 sparsity by one of five methods
// (METHODS.md §2–§5; the choices where the papers are silent are in docs/sparsity.md). The shared
// training driver (activities/train/stage.ts) runs the loop, checkpoints and resume; this file is
// each method's part: how the engine's seams are set for it (weight transforms, gradient hooks,
// update rules: the per-weight work is native), its schedules, its mask refreshes and the metrics
// they measure, its teacher, and how its final model is made and checked.
//
// Durability: masks, adapters (SLoRB, CAST scales) and optimizer state are engine buffers and so
// in every checkpoint; S-STE's β and the last mask refresh are the method's state, saved beside
// them; schedules are functions of the step. A resumed stage is therefore configured exactly as
// the uninterrupted one was at that step, and continues with the same bits.
// Its definition: schemas/stages/sparse-train.ts.

import { stageSeed } from '../../schemas/fields';
import { Model, type AdapterConfig, type MaskMethod } from '../../kernels';
import { distils, type SparseTrain } from '../../schemas/stages/sparse-train';
import { badInput, inputModel, type StageEvents, type StageRun } from '../compute';
import { engineConfig, modelFromCheckpoint } from '../train/model-state';
import { prunedMass, refreshMasks, requireTwoFour, sparseWeights } from '../train/sparsity';
import { continuationSeed, runTrainingStage, trainingData } from '../train/stage';

/** What a checkpoint must carry beyond the engine's buffers. */
interface MethodState {
  /** S-STE's β per tensor, computed once from the starting weights and then frozen. */
  betas: Record<string, number> | null;
  /**
   * The last mask refresh: a refresh runs before its step, so a checkpoint taken when that step
   * was cancelled already holds its masks; the resumed step reuses what it measured.
   */
  refreshed: { step: number; metrics: Record<string, number> } | null;
}

export const sparseTrain: StageRun<'sparse-train'> = async (deps, ctx, task, stage) => {
  const { recipe } = task;
  const data = trainingData(stage, task);
  const model = Model.create({ ...engineConfig(recipe.model), adapters: adaptersOf(stage) }, { threads: deps.threads, device: recipe.device });
  ctx.onCancel(() => model.cancel());
  const input = stage.from === undefined ? null : await inputModel(deps, task, stage.from);
  // The dense model a distilling method starts from is also its frozen teacher.
  const teacher = distils(stage) ? await modelFromCheckpoint(input!, { threads: deps.threads, device: recipe.device }) : null;
  if (teacher) ctx.onCancel(() => teacher.cancel());
  try {
    const names = sparseWeights(model, stage.scope);
    const maskMethod: MaskMethod = stage.method === 'srste' && stage.transposable ? 'transposable' : 'magnitude';
    // srste's dense tail: the steps from here on train every weight dense.
    const denseFrom = stage.method === 'srste' ? stage.steps - Math.round(stage.denseTail * stage.steps) + 1 : Infinity;
    const refreshEvery = 'maskEvery' in stage ? stage.maskEvery : stage.logEvery;
    let state: MethodState = { betas: null, refreshed: null };
    let inputMasks = false;

    /** The engine seams of step `step` (1-based): what each sparse weight's forward, gradient and update are. */
    const configure = (step: number) => {
      const dense = step >= denseFrom;
      for (const name of names) {
        switch (stage.method) {
          case 'ste':
            model.setTransform(name, { kind: 'mask' });
            break;
          case 'srste':
            model.setTransform(name, { kind: dense ? 'none' : 'mask' });
            model.setGradHook(name, dense ? { kind: 'none' } : { kind: 'masked-decay', lambda: stage.lambda });
            break;
          case 'sste':
            model.setTransform(name, { kind: 'sste', beta: state.betas![name] });
            break;
          case 'ast':
            model.setTransform(name, { kind: 'mask' });
            model.setUpdateRule(name, { kind: 'ast', lambda: astLambda(stage, step) });
            break;
          case 'cast':
            model.setTransform(name, { kind: 'scale' });
            model.setUpdateRule(name, { kind: 'adams', alpha: castAlpha(stage, step), lambda: stage.lambda });
            break;
        }
        if ('mvue' in stage && stage.mvue) model.setMvue(name, dense ? null : stageSeed(stage, recipe));
      }
    };

    /** The sparsity measures at a refresh (or, for sste, a logging point), after recomputing the masks. */
    const measure = async (step: number): Promise<Record<string, number>> => {
      const metrics = await refreshMasks(model, names, maskMethod);
      metrics['sparse/flip_interval'] = refreshEvery;
      metrics['sparse/pruned_mass'] = prunedMass(model, names);
      if (stage.method === 'srste') metrics['sparse/lambda'] = stage.lambda;
      if (stage.method === 'ast') metrics['sparse/lambda'] = astLambda(stage, step);
      if (stage.method === 'cast') {
        metrics['sparse/lambda'] = stage.lambda;
        metrics['sparse/alpha'] = castAlpha(stage, step);
      }
      for (const [name, beta] of Object.entries(state.betas ?? {})) metrics[`sparse/beta/${name}`] = beta;
      return metrics;
    };

    return await runTrainingStage(deps, ctx, task, stage, data, {
      model,
      fresh: async (events) => {
        // Adapters start as their method says (SLoRB's block indicator, scales of 1), the rest from the input or the seed.
        model.init(stageSeed(stage, recipe));
        if (input === null) return { samplerSeed: stageSeed(stage, recipe) };
        const source = teacher ?? (await modelFromCheckpoint(input, { threads: deps.threads, device: recipe.device }));
        try {
          if (source.config.adapters) throw badInput(new Error(`stage ${stage.id} starts from ${stage.from}, whose model has adapters (SLoRB branches or weight scales); start it from a dense or pruned model`));
          for (const t of source.tensors) model.writeTensor(t.name, source.readTensor(t.name));
          for (const name of names) {
            const mask = source.readTensor(name, 'mask');
            model.writeTensor(name, mask, 'mask');
            inputMasks ||= mask.includes(0);
          }
          // The optimizer starts afresh: this is a new phase of training with its own schedule.
          events.push({ type: 'continued', at: new Date().toISOString(), payload: { from: stage.from, optimizerStep: source.step, masks: inputMasks } });
          return { samplerSeed: continuationSeed(stageSeed(stage, recipe), source.step) };
        } finally {
          if (source !== teacher) source.dispose();
        }
      },
      prepare: async (resumed, step) => {
        if (resumed !== null) {
          state = JSON.parse(resumed) as MethodState;
        } else {
          if (stage.method === 'sste') state.betas = Object.fromEntries(names.map((name) => [name, model.ssteBeta(name)]));
          // The starting masks: a pruned input's (for ste and srste, which keep a mask they are
          // given), else computed from the starting weights. The refresh at step 1 is the initial
          // pruning, not a flip: it is not measured.
          if (!(inputMasks && (stage.method === 'ste' || stage.method === 'srste'))) await model.updateMasks(names, maskMethod);
          if (stage.method === 'ast' && stage.slorbK !== null) model.slorbInitMean(names);
        }
        configure(step + 1);
      },
      state: () => JSON.stringify(state),
      beforeStep: async (step) => {
        if (stage.method === 'ast' || stage.method === 'cast' || step === denseFrom) configure(step);
        const measures: Record<string, number> = step === denseFrom ? { 'sparse/dense_tail': 1 } : {};
        const due = step > 1 && (step - 1) % refreshEvery === 0 && step < denseFrom;
        if (!due) return measures;
        if (state.refreshed?.step !== step) state = { ...state, refreshed: { step, metrics: await measure(step) } };
        return { ...measures, ...state.refreshed!.metrics };
      },
      teacher: teacher && (stage.method === 'ast' || stage.method === 'cast') ? { logits: (tokens, B, T) => teacher.logits(tokens, B, T), alpha: stage.kdAlpha, tau: stage.method === 'ast' ? stage.kdTau : 1 } : undefined,
      finish: (events) => finish(model, stage, names, state, events),
    });
  } finally {
    teacher?.dispose();
    model.dispose();
  }
};

/** SLoRB branches for ast, weight scales for cast: trainable tensors in the model's table. */
function adaptersOf(stage: SparseTrain): AdapterConfig | null {
  if (stage.method === 'ast' && stage.slorbK !== null) return { scope: stage.scope, slorbK: stage.slorbK, scaleSegments: null };
  if (stage.method === 'cast') return { scope: stage.scope, slorbK: null, scaleSegments: stage.segments };
  return null;
}

/** AST's decay at step `step`: a linear ramp from 0 over `rampSteps`, then λ_max (METHODS §4.2). */
function astLambda(stage: Extract<SparseTrain, { method: 'ast' }>, step: number): number {
  return stage.rampSteps === 0 ? stage.lambda : stage.lambda * Math.min(1, (step - 1) / stage.rampSteps);
}

/** CAST's mixing weight at step `step`: t/T over the whole stage, t = step − 1 (METHODS §5.3). */
function castAlpha(stage: Extract<SparseTrain, { method: 'cast' }>, step: number): number {
  return (step - 1) / stage.steps;
}

/**
 * The stage's output model: the effective weights written into the parameters (M ⊙ W; β·S(W);
 * CAST's scales folded, then its final hard prune), checked to be exactly 2:4 in scope unless the
 * method made it dense on purpose (srste's dense tail).
 */
async function finish(model: Model, stage: SparseTrain, names: string[], state: MethodState, events: StageEvents): Promise<Record<string, number>> {
  const at = new Date().toISOString();
  if (stage.method === 'srste' && stage.denseTail > 0) {
    // The masks of the last refresh no longer describe the weights: a dense model carries none, so
    // nothing downstream (an export, an evaluation's measures) applies stale masks to it.
    for (const name of names) model.writeTensor(name, new Float32Array(model.info(name).size).fill(1), 'mask');
    events.push({ type: 'dense-output', at, payload: { reason: `the last ${Math.round(stage.denseTail * stage.steps)} steps trained dense (denseTail ${stage.denseTail})` } });
    return { 'sparse/two_four': 0 };
  }
  if (stage.method === 'cast') {
    // Fold the scales into the weights (A ⊙ W, A reset to 1), then prune with the final mask.
    await model.materialize();
    for (const name of names) model.setTransform(name, { kind: 'mask' });
  }
  const massBefore = prunedMass(model, names);
  await model.materialize();
  // S-STE's zeros define its mask; record it with the model.
  if (stage.method === 'sste') await model.updateMasks(names, 'magnitude');
  const bothWays = stage.method === 'srste' && stage.transposable;
  requireTwoFour(model, names, bothWays);
  events.push({ type: 'finalized', at, payload: { method: stage.method, tensors: names.length, twoFourBothWays: bothWays } });
  const metrics: Record<string, number> = { 'sparse/two_four': 1, 'sparse/pruned_mass': stage.method === 'sste' ? 0 : massBefore };
  for (const [name, beta] of Object.entries(state.betas ?? {})) metrics[`sparse/beta/${name}`] = beta;
  return metrics;
}
