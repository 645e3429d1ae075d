// The keys every training stage shares (pretrain, sparse-train): optimizer steps and batches,
// AdamW and its schedule, checkpoints and what a non-finite step does. One source, so the kinds
// word, check and default them the same way.
//
// Sandbox-pure (zod only).
import { z } from 'zod';
import { nonNegative, positive, positiveInt, Seed, unitInterval, wrongType } from '../fields';

/** The engine computes in float32: a larger learning rate would reach it as infinity. */
const MAX_LR = 3.4e38;

/** What a step with a NaN or infinite loss or gradient norm does (docs/recipe.md, `onNonFinite`). */
export const ON_NON_FINITE = ['fail', 'skip-step'] as const;
export type OnNonFinite = (typeof ON_NON_FINITE)[number];

/** Under `skip-step`, the longest run of consecutive skipped steps; one more fails the stage as diverged. */
export const MAX_SKIPPED_IN_A_ROW = 10;

/** Mid-stage checkpoints kept per stage, unless `keepCheckpoints` says otherwise (also for stages recorded before the key existed). */
export const DEFAULT_KEEP_CHECKPOINTS = 2;

/**
 * Linear warmup from 0 to `lr` over `warmup` steps, then cosine decay to `minLr` at the last
 * step. One step is one optimizer update over `batch` windows of `context` tokens, computed as
 * `accum` micro-batches of batch/accum windows each (a memory knob: the update is the same).
 */
export const trainingKeys = {
  seed: Seed.optional().describe("this stage's own seed (weight init, batches), in place of the recipe's: pins it across a sweep's seeds"),
  steps: positiveInt('`steps`').describe('optimizer steps'),
  batch: positiveInt('`batch` (windows per optimizer step)').describe('windows of `context` tokens per optimizer step'),
  lr: positive('`lr`')
    .max(MAX_LR, { error: (issue) => `\`lr\` ${String(issue.input)} is not a float32 number (at most ${MAX_LR}); the engine computes in float32` })
    .describe('peak learning rate'),
  minLr: nonNegative('`minLr`').optional().describe('learning rate at the last step, after cosine decay; default lr/10'),
  warmup: z
    .int({ error: wrongType('expected `warmup`: a whole number of steps') })
    .nonnegative('`warmup` must not be negative')
    .optional()
    .describe('linear warmup steps; default min(100, floor(steps/10))'),
  weightDecay: nonNegative('`weightDecay`').default(0.1).describe('AdamW decoupled weight decay on 2-D weights'),
  beta1: unitInterval('`beta1`').default(0.9).describe('AdamW first-moment decay'),
  beta2: unitInterval('`beta2`').default(0.95).describe('AdamW second-moment decay'),
  eps: positive('`eps`').default(1e-8).describe('AdamW epsilon'),
  gradClip: z
    .number({ error: wrongType('expected `gradClip`: a number, or null for no clipping') })
    .positive('`gradClip` must be positive (null turns clipping off)')
    .nullable()
    .default(1.0)
    .describe('clip the global gradient L2 norm to this value; null turns clipping off'),
  accum: positiveInt('`accum` (micro-batches per step)')
    .default(1)
    .describe('gradient-accumulation micro-batches per step; must divide `batch`'),
  checkpointEvery: positiveInt('`checkpointEvery`')
    .optional()
    .describe('steps between checkpoints (a killed worker loses at most this many); default min(1000, ceil(steps/10))'),
  keepCheckpoints: positiveInt('`keepCheckpoints`')
    .nullable()
    .default(DEFAULT_KEEP_CHECKPOINTS)
    .describe('mid-stage checkpoints kept in the store: the newest this many (the final model, the output, is always kept); null keeps every one'),
  evalEvery: positiveInt('`evalEvery`')
    .nullable()
    .default(null)
    .describe('evaluate on every eval set each this many steps; null = no evaluation during training'),
  onNonFinite: z
    .enum(ON_NON_FINITE, { error: wrongType('expected `onNonFinite`: fail or skip-step') })
    .default('fail')
    .describe(
      `a step whose loss or gradient norm is NaN or infinite: fail = the stage fails, diverged; skip-step = discard that step's update (more than ${MAX_SKIPPED_IN_A_ROW} in a row fail the stage)`,
    ),
};

type TrainingInput = {
  steps: number;
  batch: number;
  lr: number;
  minLr?: number;
  warmup?: number;
  weightDecay: number;
  accum: number;
  checkpointEvery?: number;
};

/** The checks between training keys; `ctx` is the stage's refinement context. */
export function checkTraining(stage: TrainingInput, ctx: z.core.$RefinementCtx<unknown>): void {
    if (stage.batch % stage.accum !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['accum'],
        message: `\`accum\` (${stage.accum}) must divide \`batch\` (${stage.batch}): each micro-batch holds batch/accum windows`,
      });
    }
    if (stage.lr * stage.weightDecay >= 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['weightDecay'],
        message: `lr · weightDecay = ${stage.lr * stage.weightDecay} must be below 1: the decoupled decay step w ← w·(1 − lr·weightDecay) would zero or flip every weight`,
      });
    }
    if (stage.minLr !== undefined && stage.minLr > stage.lr) {
      ctx.addIssue({ code: 'custom', path: ['minLr'], message: `\`minLr\` (${stage.minLr}) must not exceed \`lr\` (${stage.lr})` });
    }
    if (stage.warmup !== undefined && stage.warmup > stage.steps) {
      ctx.addIssue({
        code: 'custom',
        path: ['warmup'],
        message: `\`warmup\` (${stage.warmup}) must not exceed \`steps\` (${stage.steps})`,
      });
    }
}

/** The defaults that depend on other keys, filled in. */
export function resolveTraining<S extends TrainingInput>(stage: S) {
  return {
    ...stage,
    minLr: stage.minLr ?? stage.lr / 10,
    warmup: stage.warmup ?? defaultWarmup(stage.steps),
    checkpointEvery: stage.checkpointEvery ?? defaultCheckpointEvery(stage.steps),
  };
}

/** A tenth of the run, at most 100 steps. */
export function defaultWarmup(steps: number): number {
  return Math.min(100, Math.floor(steps / 10));
}

/** About ten checkpoints per stage, at most 1000 steps apart: bounds the work a killed worker loses. */
export function defaultCheckpointEvery(steps: number): number {
  return Math.min(1000, Math.max(1, Math.ceil(steps / 10)));
}
