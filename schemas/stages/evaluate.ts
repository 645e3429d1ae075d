// Stage kind `evaluate`: perplexity of one or more models on the recipe's evaluation sets, under
// the pinned protocol (non-overlapping windows of `context` tokens, last partial window dropped).
// Its activity: activities/stages/evaluate.ts.
import { z } from 'zod';
import { EvalName } from '../data';
import { positiveInt, wrongType } from '../fields';
import { inferenceMemory } from '../memory';
import { parameterCount } from '../model';
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
    .enum(['native', 'onnxruntime', 'both'], { error: wrongType('expected `runtime`: native, onnxruntime or both') })
    .default('native')
    .describe(
      "native: sieve's engine; onnxruntime: the model exported to ONNX, run by onnxruntime-node; both: each, and the stage fails unless their perplexities agree within 0.5%",
    ),
  sample: z
    .strictObject(
      {
        prompt: z.string({ error: wrongType('expected `sample.prompt`: text') }).min(1, '`sample.prompt` must not be empty').default('The '),
        tokens: positiveInt('`sample.tokens`').max(1024, '`sample.tokens` must be at most 1024').default(48),
      },
      { error: (issue) => (issue.code === 'unrecognized_keys' ? `unknown key ${issue.keys.map((k) => `\`${k}\``).join(', ')} in \`sample\`; its keys are prompt, tokens` : undefined) },
    )
    .default({ prompt: 'The ', tokens: 48 })
    .describe('the greedy continuation of a fixed prompt each model writes into the report'),
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
  memory: (stage, recipe, threads) => [
    ...inferenceMemory(recipe.model, stage.batch, threads),
    // The exported graph's initializers, and ONNX Runtime's own copy of them.
    ...(stage.runtime === 'native' ? [] : [{ what: 'the ONNX model and its runtime', bytes: 2 * 4 * parameterCount(recipe.model) }]),
  ],
  activity: { startToCloseSec: 7 * 86_400, heartbeatSec: 60 },
});
