// The training loop around the engine: one optimizer step per sampled batch, gradient accumulation
// over micro-batches, warm-up + cosine learning rate, periodic evaluation and checkpoint hooks.
//
// Determinism contract: the loop's state after step s is (model params/moments/step counter,
// sampler position, history of steps 1..s). Saving exactly that and restoring it gives the same
// bits as never having stopped, so nothing here may depend on wall time except the progress
// figures handed to `onStep`, which are never stored in a checkpoint.

import { CancelledError, lrAt, type Model } from '../../kernels';
import type { SamplerState } from '../../schemas/data';
import type { BatchSampler } from '../data/sampler';

export interface TrainConfig {
  steps: number;
  batch: number;
  accum: number;
  context: number;
  lr: number;
  minLr: number;
  warmup: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  gradClip: number | null;
  checkpointEvery: number;
  evalEvery: number | null;
}

/** One optimizer step as recorded in checkpoints and the metrics table (no timings: they are not reproducible). */
export interface StepRecord {
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** Perplexity per evaluation set, on steps where the stage evaluates. */
  eval?: Record<string, number>;
}

export interface TrainProgress {
  step: number;
  loss: number;
  tokensPerSec: number;
  etaSec: number;
}

export interface TrainHooks {
  /** After every step; throttling is the caller's business (Temporal throttles heartbeats itself). */
  onStep(progress: TrainProgress): void;
  /** At each checkpoint step and at the end; receives the state to persist. */
  onCheckpoint(state: LoopState): Promise<void>;
  /** Evaluation during training (evalEvery); returns perplexity per set. */
  evaluate(step: number): Promise<Record<string, number>>;
  /** Checked between steps: true stops the loop after the last completed step. */
  cancelled(): boolean;
}

export interface LoopState {
  step: number;
  sampler: SamplerState;
  history: StepRecord[];
}

export type LoopEnd = { kind: 'finished'; state: LoopState } | { kind: 'cancelled'; state: LoopState };

/**
 * Runs steps `start.step + 1 … cfg.steps`. `stepOffset` is the optimizer step counter of the
 * model when this stage began (non-zero when continuing from another stage), so the stage's own
 * schedule counts from 0 while Adam's bias correction keeps counting.
 */
export async function runTraining(model: Model, sampler: BatchSampler, cfg: TrainConfig, start: LoopState, hooks: TrainHooks): Promise<LoopEnd> {
  const micro = cfg.batch / cfg.accum;
  const T = cfg.context;
  const buffers = { inputs: new Int32Array(cfg.batch * T), targets: new Int32Array(cfg.batch * T) };
  const history = [...start.history];
  let samplerState = start.sampler;
  const began = performance.now();
  let tokens = 0;

  for (let step = start.step + 1; step <= cfg.steps; step++) {
    if (hooks.cancelled()) return { kind: 'cancelled', state: { step: step - 1, sampler: samplerState, history } };

    sampler.next(buffers);
    model.zeroGrad();
    let loss = 0;
    try {
      for (let m = 0; m < cfg.accum; m++) {
        const slice = (a: Int32Array) => a.subarray(m * micro * T, (m + 1) * micro * T);
        // Each micro-batch's mean loss is scaled by 1/accum so the accumulated gradient is the
        // gradient of the mean over the whole batch.
        const r = await model.forwardBackward(slice(buffers.inputs), slice(buffers.targets), micro, T, {
          lossScale: 1 / cfg.accum,
          teacherLogits: null,
          kd: null,
        });
        loss += r.loss / cfg.accum;
      }
    } catch (err) {
      // A cancel that lands inside forward/backward leaves only gradients half-made; weights,
      // moments and the sampler position of the last completed step are intact.
      if (err instanceof CancelledError) return { kind: 'cancelled', state: { step: step - 1, sampler: samplerState, history } };
      throw err;
    }
    const lr = lrAt(step - 1, { peak: cfg.lr, min: cfg.minLr, warmup: cfg.warmup, total: cfg.steps });
    const { gradNorm } = await model.optimizerStep({
      lr,
      beta1: cfg.beta1,
      beta2: cfg.beta2,
      eps: cfg.eps,
      weightDecay: cfg.weightDecay,
      gradClip: cfg.gradClip,
    });
    samplerState = sampler.state();

    const record: StepRecord = { step, loss, lr, gradNorm };
    if (cfg.evalEvery !== null && (step % cfg.evalEvery === 0 || step === cfg.steps)) record.eval = await hooks.evaluate(step);
    history.push(record);

    tokens += cfg.batch * T;
    const elapsed = (performance.now() - began) / 1000;
    const tokensPerSec = tokens / Math.max(elapsed, 1e-9);
    hooks.onStep({ step, loss, tokensPerSec, etaSec: ((cfg.steps - step) * cfg.batch * T) / tokensPerSec });

    const state = { step, sampler: samplerState, history };
    if (step % cfg.checkpointEvery === 0 && step !== cfg.steps) await hooks.onCheckpoint(state);
  }
  const state = { step: cfg.steps, sampler: samplerState, history };
  return { kind: 'finished', state };
}
