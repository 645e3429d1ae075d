// The `pretrain` stage: dense next-token training of the recipe's model on its train split.
// Starts fresh from the seed, or from the model of the stage named in `from`, or — on a retry or a
// `sieve resume` — from the last checkpoint, and then produces exactly the bits an uninterrupted
// run would have. Checkpoints are artifacts; their ids travel in heartbeats and signals only.
// Its definition: schemas/stages/pretrain.ts.

import fs from 'node:fs';
import path from 'node:path';
import { backendInfo, Model } from '../../kernels';
import type { CheckpointRef, StageTask } from '../../schemas/pipeline';
import type { Pretrain } from '../../schemas/stages/pretrain';
import { resolveData, type ResolvedData } from '../data/splits';
import { BatchSampler } from '../data/sampler';
import { badInput, dataReadBy, inputModel, type ComputeDeps, type StageEvents, type StageRun } from '../compute';
import type { StageContext } from '../stage-context';
import { evaluateSets } from '../train/evaluation';
import { runTraining, type LoopState, type TrainConfig } from '../train/loop';
import { engineConfig, readTrainingCheckpoint, writeTrainingCheckpoint } from '../train/model-state';

export const pretrain: StageRun<'pretrain'> = async (deps, ctx, task, stage) => {
  const began = performance.now();
  const { recipe } = task;
  const events: StageEvents = [];
  let data: ResolvedData;
  try {
    data = resolveData(dataReadBy(stage, recipe), { tokenizer: recipe.model.tokenizer, context: recipe.model.context });
  } catch (err) {
    throw badInput(err);
  }
  const cfg = trainConfig(stage, recipe.model.context);
  const model = Model.create(engineConfig(recipe.model), { threads: deps.threads, device: recipe.device });
  ctx.onCancel(() => model.cancel());
  try {
    const start = await startingPoint(deps, ctx, task, stage, model, data, events);
    let lastCheckpoint: CheckpointRef | null = start.checkpoint;

    const saveCheckpoint = async (state: LoopState): Promise<CheckpointRef> => {
      const stored = await writeToStore(deps, (file) => writeTrainingCheckpoint(file, model, state));
      const ref: CheckpointRef = { stageId: stage.id, step: state.step, sha256: stored.sha256, bytes: stored.bytes };
      lastCheckpoint = ref;
      ctx.heartbeat({ step: state.step, steps: cfg.steps, loss: state.history.at(-1)?.loss ?? null, tokensPerSec: null, etaSec: null, checkpoint: ref });
      events.push({ type: 'checkpoint-saved', at: new Date().toISOString(), payload: { step: ref.step, sha256: ref.sha256, attempt: ctx.attempt } });
      await ctx.reportCheckpoint(ref);
      return ref;
    };

    const end = await runTraining(model, start.sampler, cfg, start.state, {
      onStep: (p) =>
        ctx.heartbeat({ step: p.step, steps: cfg.steps, loss: p.loss, tokensPerSec: p.tokensPerSec, etaSec: p.etaSec, checkpoint: lastCheckpoint }),
      onCheckpoint: async (state) => {
        await saveCheckpoint(state);
      },
      evaluate: async () => {
        const results = await evaluateSets(model, data.eval, recipe.model.context, 8, () => ctx.isCancelled());
        return Object.fromEntries(results.map((r) => [r.set, r.result.perplexity]));
      },
      cancelled: () => ctx.isCancelled(),
    });

    if (end.kind === 'cancelled') {
      // Keep what was computed since the last checkpoint: the next attempt (or `sieve resume`)
      // continues from here instead of recomputing it.
      if (end.state.step > (lastCheckpoint?.step ?? start.state.step)) await saveCheckpoint(end.state);
      ctx.throwCancelled();
    }

    const final = await writeToStore(deps, (file) => writeTrainingCheckpoint(file, model, end.state));
    const history = await deps.store.put(Buffer.from(JSON.stringify(end.state.history)));
    const last = end.state.history.slice(-Math.min(10, end.state.history.length));
    const metrics: Record<string, number> = {
      'train/loss': end.state.history.at(-1)?.loss ?? NaN,
      'train/loss_last10': last.reduce((a, r) => a + r.loss, 0) / Math.max(1, last.length),
      'train/steps': cfg.steps,
      'train/tokens': cfg.steps * cfg.batch * cfg.context,
      'model/params': model.numParams,
    };
    const lastEval = [...end.state.history].reverse().find((r) => r.eval)?.eval ?? {};
    for (const [set, ppl] of Object.entries(lastEval)) metrics[`eval/${set}/ppl`] = ppl;
    const computeMs = performance.now() - began;
    metrics['train/tokens_per_sec'] = ((cfg.steps - start.state.step) * cfg.batch * cfg.context) / (computeMs / 1000);
    events.push({
      type: 'stage-computed',
      at: new Date().toISOString(),
      payload: { attempt: ctx.attempt, startedAtStep: start.state.step, data: data.train.info, backend: backendInfo(recipe.device), warnings: data.warnings },
    });
    return {
      artifacts: [
        { sha256: final.sha256, bytes: final.bytes, kind: 'checkpoint', role: 'model' },
        { sha256: history.sha256, bytes: history.bytes, kind: 'metrics', role: 'history' },
      ],
      metrics,
      computeMs,
      events,
    };
  } finally {
    model.dispose();
  }
};

function trainConfig(stage: Pretrain, context: number): TrainConfig {
  return {
    steps: stage.steps,
    batch: stage.batch,
    accum: stage.accum,
    context,
    lr: stage.lr,
    minLr: stage.minLr,
    warmup: stage.warmup,
    weightDecay: stage.weightDecay,
    beta1: stage.beta1,
    beta2: stage.beta2,
    eps: stage.eps,
    gradClip: stage.gradClip,
    checkpointEvery: stage.checkpointEvery,
    evalEvery: stage.evalEvery,
  };
}

interface Start {
  state: LoopState;
  sampler: BatchSampler;
  checkpoint: CheckpointRef | null;
}

/**
 * The newest checkpoint of this stage that a retry's heartbeat, the workflow (for a retry) or
 * `sieve resume` names; else `from`; else the seed. Every checkpoint of a stage lies on the same
 * deterministic trajectory, so the newest is always the right one to continue from.
 */
async function startingPoint(deps: ComputeDeps, ctx: StageContext, task: StageTask, stage: Pretrain, model: Model, data: ResolvedData, events: StageEvents): Promise<Start> {
  const { recipe } = task;
  const shape = { batch: stage.batch, context: recipe.model.context };
  const candidates = [ctx.lastHeartbeatCheckpoint, task.resumeFrom, ctx.attempt > 1 ? await ctx.reportedCheckpoint(stage.id) : null];
  const resume = candidates.filter((c) => c?.stageId === stage.id).reduce<CheckpointRef | null>((best, c) => (best && best.step >= c!.step ? best : c), null);
  if (resume) {
    const file = (await deps.store.verify(resume.sha256)).path;
    const { state } = await readTrainingCheckpoint(file, model);
    if (!state) throw badInput(new Error(`checkpoint ${resume.sha256} holds no training position; it cannot resume stage ${stage.id}`));
    events.push({ type: 'resumed', at: new Date().toISOString(), payload: { step: state.step, sha256: resume.sha256, attempt: ctx.attempt } });
    return { state, sampler: BatchSampler.restore(data.train.tokens, state.sampler, shape), checkpoint: resume };
  }
  let samplerSeed = recipe.seed;
  if (stage.from !== undefined) {
    const input = await inputModel(deps, task, stage.from);
    const { modelStep } = await readTrainingCheckpoint(input, model);
    // A continuation must not redraw the batches its parent stage already trained on.
    samplerSeed = (recipe.seed ^ Math.imul(modelStep, 0x9e3779b1)) >>> 0;
    events.push({ type: 'continued', at: new Date().toISOString(), payload: { from: stage.from, optimizerStep: modelStep } });
  } else {
    model.init(recipe.seed);
  }
  const sampler = BatchSampler.create(data.train.tokens, { ...shape, seed: samplerSeed });
  return { state: { step: 0, sampler: sampler.state(), history: [] }, sampler, checkpoint: null };
}

/** Writes a file through `write` into a private temp path, then moves it into the artifact store. */
async function writeToStore(deps: ComputeDeps, write: (file: string) => Promise<unknown>) {
  // Inside the store's tree, so the final move is a rename on the same filesystem.
  const tmp = path.join(deps.store.home, 'artifacts', 'tmp');
  fs.mkdirSync(tmp, { recursive: true });
  const dir = fs.mkdtempSync(path.join(tmp, 'ckpt-'));
  try {
    const file = path.join(dir, 'checkpoint.safetensors');
    await write(file);
    return await deps.store.put(file, { move: true });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
