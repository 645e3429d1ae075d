// A training stage from start to output, whatever the kind (pretrain, sparse-train): data, the
// starting point (fresh, continued from an input model, or resumed from the newest intact
// checkpoint it is told of), the loop with its heartbeats, checkpoints with their history
// segments, cancellation, and the output artifacts and metrics. A kind supplies only what is its
// own (a `TrainingMethod`): how a fresh model starts, how the engine is configured for it, what
// happens before each step, the teacher it distils from, and how its final model is made.
//
// Durability: a checkpoint holds the engine's buffers (weights, moments, masks), the optimizer
// step, the sampler position and the method's own state (`state()`: for instance S-STE's β);
// a resumed stage is configured from it and then produces exactly the bits an uninterrupted one
// would have. Checkpoints are artifacts; their ids travel in heartbeats and signals only.

import fs from 'node:fs';
import path from 'node:path';
import { backendInfo, type Model } from '../../kernels';
import { checkpointCandidates, mergeCheckpoints, type CheckpointFile, type CheckpointRef, type StageOutput, type StageTask } from '../../schemas/pipeline';
import type { RecipeStage } from '../../schemas/recipe';
import { badInput, dataReadBy, diverged, type ComputeDeps, type StageEvents } from '../compute';
import { resolveData, type ResolvedData } from '../data/splits';
import { BatchSampler } from '../data/sampler';
import type { StageContext } from '../stage-context';
import { ArtifactCorruptError, ArtifactMissingError } from '../store/artifacts';
import { evaluateSets } from './evaluation';
import { readHistory, writeSegment, type SegmentRef, type StepRecord } from './history';
import { DivergedError, runTraining, type LoopState, type Teacher, type TrainConfig } from './loop';
import { openTrainingCheckpoint, writeTrainingCheckpoint, type TrainingCheckpoint } from './model-state';

/** What a kind of training stage adds to the shared driver. */
export interface TrainingMethod {
  /** The model to train (built by the kind: its engine config may carry adapters). */
  model: Model;
  /**
   * A stage that starts afresh (no checkpoint of its own): initialise the model or load its
   * input. Returns the sampler's seed; its events are journaled.
   */
  fresh(events: StageEvents): Promise<{ samplerSeed: number }>;
  /**
   * Called once the model holds its starting point, fresh or resumed, with the method state a
   * resumed checkpoint carried (null when fresh): set transforms, hooks and update rules.
   */
  prepare(resumedState: string | null, step: number): Promise<void>;
  /** The method's own state, saved in every checkpoint (null: none). */
  state(): string | null;
  /** Before step `step`: schedules, mask refreshes; the metrics it returns are recorded at that step. */
  beforeStep?(step: number): Promise<Record<string, number> | null>;
  /** The frozen teacher a distilling method learns from. */
  teacher?: Teacher;
  /** After the last step: the final model (materialised, folded, checked) and its metrics and events. */
  finish?(events: StageEvents): Promise<Record<string, number>>;
}

/** The sampler seed of a stage that continues a model: it must not redraw the batches its parent already trained on. */
export function continuationSeed(seed: number, modelStep: number): number {
  return (seed ^ Math.imul(modelStep, 0x9e3779b1)) >>> 0;
}

/** A training stage's keys as the driver reads them (schemas/stages/training.ts). */
type TrainingStage = Extract<RecipeStage, { kind: 'pretrain' | 'sparse-train' }>;

/** The stage's data, resolved as its definition says (a bad source fails the stage without a retry). */
export function trainingData(stage: TrainingStage, task: StageTask): ResolvedData {
  const { recipe } = task;
  try {
    return resolveData(dataReadBy(stage, recipe), { tokenizer: recipe.model.tokenizer, context: recipe.model.context });
  } catch (err) {
    throw badInput(err);
  }
}

export function trainConfig(stage: TrainingStage, context: number): TrainConfig {
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
    onNonFinite: stage.onNonFinite,
  };
}

export async function runTrainingStage(deps: ComputeDeps, ctx: StageContext, task: StageTask, stage: TrainingStage, data: ResolvedData, method: TrainingMethod): Promise<StageOutput> {
  const began = performance.now();
  const { recipe } = task;
  const { model } = method;
  const events: StageEvents = [];
  const cfg = trainConfig(stage, recipe.model.context);
  const start = await startingPoint(deps, ctx, task, stage, method, data, events);
  await method.prepare(start.methodState, start.state.step);
  // The newest checkpoint written (or resumed from), carrying the older ones as fallbacks.
  let lastCheckpoint: CheckpointRef | null = start.checkpoint;
  // The newest history segment on the checkpointEvery grid: the next segment continues it, so a
  // checkpoint at a grid step has the same bits however often the stage was interrupted.
  let segmentHead: SegmentRef | null = start.segmentHead;

  const saveCheckpoint = async (state: LoopState): Promise<CheckpointRef> => {
    const segment = await writeSegment(deps.store, segmentHead, state.history.slice(segmentHead?.step ?? 0));
    if (state.step % cfg.checkpointEvery === 0) segmentHead = segment;
    const stored = await writeToStore(deps, (file) => writeTrainingCheckpoint(file, model, state, segment.sha256, method.state()));
    const written: CheckpointRef = {
      stageId: stage.id,
      step: state.step,
      sha256: stored.sha256,
      bytes: stored.bytes,
      history: { sha256: segment.sha256, bytes: segment.bytes },
      earlier: [],
    };
    const ref = mergeCheckpoints(lastCheckpoint, written);
    lastCheckpoint = ref;
    ctx.heartbeat({ step: state.step, steps: cfg.steps, loss: state.history.at(-1)?.loss ?? null, tokensPerSec: null, etaSec: null, checkpoint: ref });
    events.push({ type: 'checkpoint-saved', at: new Date().toISOString(), payload: { step: ref.step, sha256: ref.sha256, attempt: ctx.attempt } });
    await ctx.reportCheckpoint(ref);
    return ref;
  };

  const end = await runTraining(model, start.sampler, cfg, start.state, {
    onStep: (p) => ctx.heartbeat({ step: p.step, steps: cfg.steps, loss: p.loss, tokensPerSec: p.tokensPerSec, etaSec: p.etaSec, checkpoint: lastCheckpoint }),
    onCheckpoint: async (state) => {
      await saveCheckpoint(state);
    },
    evaluate: async () => {
      const results = await evaluateSets(model, data.eval, recipe.model.context, 8, () => ctx.isCancelled());
      return Object.fromEntries(results.map((r) => [r.set, r.result.perplexity]));
    },
    cancelled: () => ctx.isCancelled(),
    onSkip: (step, what, inARow) => {
      // NaN and Infinity have no JSON form: the value travels as text.
      events.push({ type: 'step-skipped', at: new Date().toISOString(), payload: { step, quantity: what.quantity, value: String(what.value), inARow, attempt: ctx.attempt } });
    },
    beforeStep: method.beforeStep?.bind(method),
    teacher: method.teacher ?? null,
  }).catch((err: unknown) => {
    throw err instanceof DivergedError ? diverged(err) : err;
  });

  if (end.kind === 'cancelled') {
    // Keep what was computed since the last checkpoint: the next attempt (or `sieve resume`)
    // continues from here instead of recomputing it.
    if (end.state.step > (lastCheckpoint?.step ?? start.state.step)) await saveCheckpoint(end.state);
    ctx.throwCancelled();
  }

  const finalMetrics = (await method.finish?.(events)) ?? {};
  const final = await writeToStore(deps, (file) => writeTrainingCheckpoint(file, model, end.state, null, null));
  const history = await deps.store.put(Buffer.from(JSON.stringify(end.state.history)));
  const trained = end.state.history.filter((r) => !r.skipped);
  const last = trained.slice(-10);
  const metrics: Record<string, number> = {
    'train/loss': trained.at(-1)?.loss ?? NaN,
    'train/loss_last10': last.reduce((a, r) => a + r.loss, 0) / Math.max(1, last.length),
    'train/steps': cfg.steps,
    'train/tokens': cfg.steps * cfg.batch * cfg.context,
    'model/params': model.numParams,
    ...finalMetrics,
  };
  if (stage.onNonFinite === 'skip-step') metrics['train/skipped_steps'] = end.state.history.length - trained.length;
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
}

interface Start {
  state: LoopState;
  sampler: BatchSampler;
  checkpoint: CheckpointRef | null;
  segmentHead: SegmentRef | null;
  methodState: string | null;
}

/** A checkpoint that cannot be resumed from, whatever the attempt: gone, damaged, or not a training state. */
class UnusableCheckpoint extends Error {}

/**
 * The newest intact checkpoint of this stage among those a retry's heartbeat, the workflow (for a
 * retry) and the task (`sieve resume`, earlier attempts) name, with their fallbacks; else a fresh
 * start (the method's). Every checkpoint of a stage lies on the same deterministic trajectory, so
 * the newest intact one is always the right one to continue from; the ones passed over are named
 * in a `resume-fallback` event.
 */
async function startingPoint(deps: ComputeDeps, ctx: StageContext, task: StageTask, stage: TrainingStage, method: TrainingMethod, data: ResolvedData, events: StageEvents): Promise<Start> {
  const shape = { batch: stage.batch, context: task.recipe.model.context };
  const known = [ctx.lastHeartbeatCheckpoint, task.resumeFrom, ctx.attempt > 1 ? await ctx.reportedCheckpoint(stage.id) : null]
    .filter((c): c is CheckpointRef => c?.stageId === stage.id)
    .reduce<CheckpointRef | null>((merged, c) => mergeCheckpoints(merged, c), null);
  if (known) {
    const candidates = checkpointCandidates(known);
    const passedOver: Array<CheckpointFile & { reason: string }> = [];
    for (const [i, candidate] of candidates.entries()) {
      let point: ResumePoint;
      try {
        point = await openResumePoint(deps, method.model, candidate, stage.checkpointEvery);
      } catch (err) {
        if (!(err instanceof UnusableCheckpoint)) throw err;
        passedOver.push({ ...candidate, reason: err.message });
        continue;
      }
      point.checkpoint.applyTo(method.model);
      const at = new Date().toISOString();
      events.push({ type: 'resumed', at, payload: { step: point.step, sha256: candidate.sha256, attempt: ctx.attempt } });
      if (passedOver.length > 0) {
        const message = `continued from the checkpoint at step ${candidate.step}, the newest intact one: ${passedOver.map((p) => `step ${p.step} (${p.sha256.slice(0, 12)}) ${p.reason}`).join('; ')}`;
        events.push({ type: 'resume-fallback', at, payload: { step: candidate.step, sha256: candidate.sha256, passedOver, message, attempt: ctx.attempt } });
      }
      return {
        state: { step: point.step, sampler: point.sampler, history: point.history },
        sampler: BatchSampler.restore(data.train.tokens, point.sampler, shape),
        checkpoint: { stageId: stage.id, ...candidate, history: point.segment, earlier: candidates.slice(i + 1) },
        segmentHead: point.segmentHead,
        methodState: point.checkpoint.methodState,
      };
    }
    const reasons = passedOver.map((p) => `step ${p.step} (${p.sha256.slice(0, 12)}) ${p.reason}`).join('; ');
    throw badInput(new Error(`stage ${stage.id} cannot resume: none of its ${candidates.length} known checkpoints is intact (${reasons}); run the recipe again to start it over`));
  }
  const { samplerSeed } = await method.fresh(events);
  const sampler = BatchSampler.create(data.train.tokens, { ...shape, seed: samplerSeed });
  return { state: { step: 0, sampler: sampler.state(), history: [] }, sampler, checkpoint: null, segmentHead: null, methodState: null };
}

interface ResumePoint {
  checkpoint: TrainingCheckpoint;
  step: number;
  sampler: LoopState['sampler'];
  history: StepRecord[];
  /** The segment ending at this step (null: a checkpoint that holds its history inline). */
  segment: { sha256: string; bytes: number } | null;
  segmentHead: SegmentRef | null;
}

/**
 * Reads a candidate and its history without touching the model. Throws UnusableCheckpoint when
 * it is missing, damaged, or not this stage's training state; a system error (EIO, …) is thrown
 * as it is, for a retry.
 */
async function openResumePoint(deps: ComputeDeps, model: Model, candidate: CheckpointFile, checkpointEvery: number): Promise<ResumePoint> {
  try {
    const file = (await deps.store.verify(candidate.sha256)).path;
    const checkpoint = await openTrainingCheckpoint(file, model);
    const { position, history } = checkpoint;
    if (!position) throw new UnusableCheckpoint('holds no training position');
    if (!history) throw new UnusableCheckpoint('names no loss history');
    if ('records' in history) {
      if (history.records.length !== position.step) throw new UnusableCheckpoint(`holds ${history.records.length} history records for step ${position.step}`);
      return { checkpoint, ...position, history: history.records, segment: null, segmentHead: null };
    }
    const chain = await readHistory(deps.store, history.segment, position.step);
    const [newest] = chain.segments;
    // A checkpoint off the grid (written when the stage was cancelled) ends a segment that the
    // next grid checkpoint replaces, so the next segment continues the one before it.
    const segmentHead = position.step % checkpointEvery === 0 ? newest : newest.previous;
    return { checkpoint, ...position, history: chain.records, segment: { sha256: newest.sha256, bytes: newest.bytes }, segmentHead };
  } catch (err) {
    if (err instanceof UnusableCheckpoint || typeof (err as NodeJS.ErrnoException).code === 'string') throw err;
    if (err instanceof ArtifactMissingError || err instanceof ArtifactCorruptError) {
      const what = err.message.replace(/^artifact [0-9a-f]+ /, '');
      throw new UnusableCheckpoint(err.sha256 === candidate.sha256 ? what : `has a history segment that ${what}`);
    }
    throw new UnusableCheckpoint(`cannot be resumed from: ${(err as Error).message}`);
  }
}

/** Writes a file through `write` into a private temp path, then moves it into the artifact store. */
export async function writeToStore(deps: ComputeDeps, write: (file: string) => Promise<unknown>) {
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
