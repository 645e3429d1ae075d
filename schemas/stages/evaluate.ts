// Stage kind `evaluate`: perplexity of one or more models on the recipe's evaluation sets, under
// the pinned protocol (non-overlapping windows of `context` tokens, last partial window dropped).
// Its activity: activities/stages/evaluate.ts.
import { z } from 'zod';
import { EvalName } from '../data';
import { positiveInt, wrongType } from '../fields';
import { inferenceMemory } from '../memory';
import { defineStage, StageId, stageObject } from './define';

export const Evaluate = stageObject('evaluate', {
  id: StageId,
  kind: z.literal('evaluate'),
  from: z
    .union([StageId, z.array(StageId).min(1, '`from` needs at least one stage id')], {
      error: wrongType('expected `from`: a stage id or a list of stage ids'),
    })
    .superRefine((from, ctx) => {
      if (typeof from === 'string') return;
      from.forEach((id, i) => {
        if (from.indexOf(id) !== i) ctx.addIssue({ code: 'custom', path: [i], message: `stage "${id}" is listed twice in \`from\`` });
      });
    })
    .describe('the model-producing stage(s) to evaluate: one id or a list'),
  sets: z
    .array(EvalName, { error: wrongType('expected `sets`: a list of evaluation-set names') })
    .min(1, '`sets` needs at least one evaluation-set name (leave it out for all of them)')
    .superRefine((sets, ctx) => {
      sets.forEach((name, i) => {
        if (sets.indexOf(name) !== i) ctx.addIssue({ code: 'custom', path: [i], message: `evaluation set "${name}" is listed twice` });
      });
    })
    .optional()
    .describe("names from the recipe's `data.eval`; default all of them, in declaration order"),
  batch: positiveInt('`batch` (windows per forward pass)')
    .default(8)
    .describe('windows per forward pass: a speed/memory knob, the perplexity does not depend on it'),
  runtime: z
    .enum(['native'], { error: wrongType('`runtime` must be "native" (ONNX Runtime arrives with export)') })
    .default('native')
    .describe('the engine that runs the forward passes'),
});
export type Evaluate = z.infer<typeof Evaluate>;
/** An evaluate stage in a parsed recipe: `sets` is always filled in. */
export type ResolvedEvaluate = Evaluate & { sets: string[] };

export const evaluate = defineStage({
  kind: 'evaluate',
  schema: Evaluate,
  produces: 'report',
  accepts: { produces: 'model' },
  resolve: (stage, recipe): ResolvedEvaluate => ({ ...stage, sets: stage.sets ?? Object.keys(recipe.data.eval) }),
  check: (stage, recipe, report) => {
    const names = Object.keys(recipe.data.eval);
    stage.sets?.forEach((name, j) => {
      if (!names.includes(name)) report(['sets', j], `unknown evaluation set "${name}": \`data.eval\` defines ${names.join(', ')}`);
    });
  },
  reads: (stage) => ({ train: false, eval: stage.sets }),
  // Evaluation is a deterministic function of its input models and data.
  seeded: false,
  steps: () => null,
  memory: (stage, recipe, threads) => inferenceMemory(recipe.model, stage.batch, threads),
  activity: { startToCloseSec: 7 * 86_400, heartbeatSec: 60 },
});
