// The training loop around the engine: one optimizer step per sampled batch, gradient accumulation
// over micro-batches, warm-up + cosine learning rate, periodic evaluation and checkpoint hooks,
// and the policy for a step whose loss or gradient norm is NaN or infinite (`onNonFinite`).
//
// Determinism contract: the loop's state after step s is (model params/moments/step counter,
// sampler position, history of steps 1..s). Saving exactly that and restoring it gives the same
// bits as never having stopped, so nothing here may depend on wall time except the progress
// figures handed to `onStep`, which are never stored in a checkpoint. Skipped steps are part of
// the history (their records say so), which is all the skip policy reads: a resumed stage skips
// and fails exactly where the uninterrupted one would.

import { CancelledError, lrAt, type Model } from '../../kernels';
import type { SamplerState } from '../../schemas/data';
import { MAX_SKIPPED_IN_A_ROW, type OnNonFinite } from '../../schemas/stages/training';
import { ERROR_TYPES } from '../../workflows/contract';
import type { BatchSampler } from '../data/sampler';
import type { StepRecord } from './history';

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
  onNonFinite: OnNonFinite;
}

/** Which measure of a step was not finite. */
export type NonFinite = { quantity: 'loss' | 'gradient norm'; value: number };

/**
 * The stage's loss or gradient norm became NaN or infinite and its policy does not (or no longer)
 * skip the step. The name is the failure type Temporal sees; the workflow does not retry it, since
 * the same bits diverge again.
 */
export class DivergedError extends Error {
  override readonly name = ERROR_TYPES.diverged;
  constructor(
    readonly step: number,
    readonly what: NonFinite,
    message: string,
  ) {
    super(message);
  }
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
  /** After a step whose update was discarded (onNonFinite: skip-step); `inARow` counts it. */
  onSkip(step: number, what: NonFinite, inARow: number): void;
  /** Before step `step` is drawn (schedules, mask refreshes); what it returns is recorded with the step. */
  beforeStep?: (step: number) => Promise<Record<string, number> | null>;
  /** A frozen teacher to distil from: its logits on each micro-batch join the loss. */
  teacher?: Teacher | null;
}

/** Distillation: loss = alpha·tau²·KL(softmax(t/tau) ‖ softmax(s/tau)) + (1 − alpha)·CE. */
export interface Teacher {
  logits(inputs: Int32Array, B: number, T: number): Promise<Float32Array>;
  alpha: number;
  tau: number;
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

    let measures: Record<string, number> | null = null;
    let loss = 0;
    try {
      measures = (await hooks.beforeStep?.(step)) ?? null;
      sampler.next(buffers);
      model.zeroGrad();
      const teacher = hooks.teacher ?? null;
      let ce = 0;
      let kl = 0;
      for (let m = 0; m < cfg.accum; m++) {
        const slice = (a: Int32Array) => a.subarray(m * micro * T, (m + 1) * micro * T);
        const teacherLogits = teacher ? await teacher.logits(slice(buffers.inputs), micro, T) : null;
        // Each micro-batch's mean loss is scaled by 1/accum so the accumulated gradient is the
        // gradient of the mean over the whole batch.
        const r = await model.forwardBackward(slice(buffers.inputs), slice(buffers.targets), micro, T, {
          lossScale: 1 / cfg.accum,
          teacherLogits,
          kd: teacher ? { alpha: teacher.alpha, tau: teacher.tau } : null,
        });
        loss += r.loss / cfg.accum;
        ce += r.ce / cfg.accum;
        kl += r.kl / cfg.accum;
      }
      if (teacher) measures = { ...measures, 'train/ce': ce, 'train/kl': kl };
    } catch (err) {
      // A cancel that lands inside forward/backward leaves only gradients half-made; weights,
      // moments and the sampler position of the last completed step are intact.
      if (err instanceof CancelledError) return { kind: 'cancelled', state: { step: step - 1, sampler: samplerState, history } };
      throw err;
    }
    const lr = lrAt(step - 1, { peak: cfg.lr, min: cfg.minLr, warmup: cfg.warmup, total: cfg.steps });
    // Nothing may change before the step is judged: a non-finite loss never reaches the
    // optimizer, and the optimizer leaves everything as it was when the norm is not finite.
    let gradNorm = Number.NaN;
    let bad: NonFinite | null = null;
    if (!Number.isFinite(loss)) {
      bad = { quantity: 'loss', value: loss };
    } else {
      const result = await model.optimizerStep({
        lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.eps,
        weightDecay: cfg.weightDecay,
        gradClip: cfg.gradClip,
        skipNonFinite: true,
      });
      gradNorm = result.gradNorm;
      if (!result.applied) bad = { quantity: 'gradient norm', value: gradNorm };
    }
    samplerState = sampler.state();

    // Key order as in StepRecord, so a record read back from a checkpoint's history stringifies alike.
    const record: StepRecord = bad ? { step, loss, lr, gradNorm, skipped: true } : { step, loss, lr, gradNorm };
    if (bad) hooks.onSkip(step, bad, judge(cfg, history, step, bad));
    if (cfg.evalEvery !== null && (step % cfg.evalEvery === 0 || step === cfg.steps)) record.eval = await hooks.evaluate(step);
    if (measures && Object.keys(measures).length > 0) record.metrics = measures;
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

/**
 * The skip policy for a non-finite step: throws DivergedError when the stage must fail, else
 * returns how many steps in a row (this one included) have now been skipped.
 */
function judge(cfg: TrainConfig, history: readonly StepRecord[], step: number, bad: NonFinite): number {
  const what = `the ${bad.quantity} is ${bad.value}`;
  if (cfg.onNonFinite === 'fail') {
    throw new DivergedError(step, bad, `diverged at step ${step}: ${what}; lower \`lr\`, or set \`onNonFinite: skip-step\` to skip such steps`);
  }
  let inARow = 1;
  for (let i = history.length - 1; i >= 0 && history[i].skipped; i--) inARow++;
  if (inARow > MAX_SKIPPED_IN_A_ROW) {
    throw new DivergedError(step, bad, `diverged at step ${step}: ${what}, after ${MAX_SKIPPED_IN_A_ROW} steps in a row already skipped (onNonFinite: skip-step skips at most ${MAX_SKIPPED_IN_A_ROW} in a row); lower \`lr\``);
  }
  return inARow;
}
