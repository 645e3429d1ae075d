// Stage kind `pretrain`: dense next-token training with AdamW, from the seed or continuing the
// model (and optimizer state) of an earlier pretrain stage. Its activity: activities/stages/pretrain.ts.
import { z } from 'zod';
import { nonNegative, positive, positiveInt, unitInterval, wrongType } from '../fields';
import { defineStage, StageId, stageObject } from './define';

/**
 * Linear warmup from 0 to `lr` over `warmup` steps, then cosine decay to `minLr` at the last
 * step. One step is one optimizer update over `batch` windows of `context` tokens, computed as
 * `accum` micro-batches of batch/accum windows each (a memory knob: the update is the same).
 */
export const Pretrain = stageObject('pretrain', {
  id: StageId,
  kind: z.literal('pretrain'),
  from: StageId.optional().describe(
    'an earlier pretrain stage to continue from (its final weights and optimizer state); absent = fresh init from the seed',
  ),
  steps: positiveInt('`steps`').describe('optimizer steps'),
  batch: positiveInt('`batch` (windows per optimizer step)').describe('windows of `context` tokens per optimizer step'),
  lr: positive('`lr`').describe('peak learning rate'),
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
  evalEvery: positiveInt('`evalEvery`')
    .nullable()
    .default(null)
    .describe('evaluate on every eval set each this many steps; null = no evaluation during training'),
})
  .superRefine((stage, ctx) => {
    if (stage.batch % stage.accum !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['accum'],
        message: `\`accum\` (${stage.accum}) must divide \`batch\` (${stage.batch}): each micro-batch holds batch/accum windows`,
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
  })
  .transform((stage) => ({
    ...stage,
    minLr: stage.minLr ?? stage.lr / 10,
    warmup: stage.warmup ?? defaultWarmup(stage.steps),
    checkpointEvery: stage.checkpointEvery ?? defaultCheckpointEvery(stage.steps),
  }));
export type Pretrain = z.infer<typeof Pretrain>;

/** A tenth of the run, at most 100 steps. */
export function defaultWarmup(steps: number): number {
  return Math.min(100, Math.floor(steps / 10));
}

/** About ten checkpoints per stage, at most 1000 steps apart: bounds the work a killed worker loses. */
export function defaultCheckpointEvery(steps: number): number {
  return Math.min(1000, Math.max(1, Math.ceil(steps / 10)));
}

export const pretrain = defineStage({
  kind: 'pretrain',
  schema: Pretrain,
  produces: 'model',
  accepts: ['pretrain'],
  // Evaluation sets are read only when the stage evaluates while training.
  reads: (stage, recipe) => ({ train: true, eval: stage.evalEvery === null ? [] : Object.keys(recipe.data.eval) }),
  seeded: true,
  steps: (stage) => stage.steps,
  // A stage may legitimately train for weeks; liveness is policed by the heartbeat timeout.
  activity: { startToCloseSec: 30 * 86_400, heartbeatSec: 60 },
});
