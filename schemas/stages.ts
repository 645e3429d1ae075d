// The recipe's stages: one strict zod object per stage kind, joined in a discriminated union on `kind`.
//
// Sandbox-pure (imports zod and ./data only) because Temporal workflows import it. A kind
// exists here only when the engine runs it: pretrain and evaluate today; prune,
// sparse-train and quantize arrive with their issues, and until then a recipe naming them
// fails with the list of kinds that do exist. Every default is applied here, so the parsed
// stage is the explicit, resolved configuration that the stage cache hashes. Checks that
// need other stages or the rest of the recipe (`from`, `sets`) live in ./recipe.ts.
import { z } from 'zod';
import { EvalName } from './data';

/** A wrong-type message; a missing key (input undefined) is left to the parse-level map, which words it as missing. */
const wrongType = (message: string) => (issue: { input?: unknown }) => (issue.input === undefined ? undefined : message);

/** Stage ids become metric, event and artifact-link keys, so they stay plain slugs. */
export const StageId = z
  .string({ error: wrongType('expected a stage id: a string') })
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/,
    'a stage id is 1–64 letters, digits, "_" or "-", starting with a letter or digit',
  );
export type StageId = z.infer<typeof StageId>;


const positiveInt = (what: string) =>
  z.int({ error: wrongType(`expected ${what}: a whole number`) }).positive(`${what} must be at least 1`);
const nonNegative = (what: string) =>
  z.number({ error: wrongType(`expected ${what}: a number`) }).nonnegative(`${what} must not be negative`);
const unitInterval = (what: string) =>
  z
    .number({ error: wrongType(`expected ${what}: a number`) })
    .min(0, `${what} must be in [0, 1)`)
    .lt(1, `${what} must be in [0, 1)`);

/** "a pretrain stage", "an evaluate stage": for messages. */
export function aStage(kind: string): string {
  return `${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind} stage`;
}

/** A strict object whose unknown-key message names the stage kind, so a key given to the wrong kind is obvious. */
function stageObject<S extends z.core.$ZodLooseShape>(kind: string, shape: S) {
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown key ${issue.keys.map((k) => `\`${k}\``).join(', ')} in ${aStage(kind)}`
        : undefined,
  });
}

/**
 * Dense next-token training with AdamW: linear warmup from 0 to `lr` over `warmup` steps,
 * then cosine decay to `minLr` at the last step. One step is one optimizer update over
 * `batch` windows of `context` tokens, computed as `accum` micro-batches of batch/accum
 * windows each (a memory knob: the update is the same).
 */
export const Pretrain = stageObject('pretrain', {
  id: StageId,
  kind: z.literal('pretrain'),
  from: StageId.optional().describe(
    'an earlier pretrain stage to continue from (its final weights and optimizer state); absent = fresh init from the seed',
  ),
  steps: positiveInt('`steps`').describe('optimizer steps'),
  batch: positiveInt('`batch` (windows per optimizer step)').describe('windows of `context` tokens per optimizer step'),
  lr: z.number({ error: wrongType('expected `lr`: a number') }).positive('`lr` must be positive').describe('peak learning rate'),
  minLr: nonNegative('`minLr`').optional().describe('learning rate at the last step, after cosine decay; default lr/10'),
  warmup: z
    .int({ error: wrongType('expected `warmup`: a whole number of steps') })
    .nonnegative('`warmup` must not be negative')
    .optional()
    .describe('linear warmup steps; default min(100, floor(steps/10))'),
  weightDecay: nonNegative('`weightDecay`').default(0.1).describe('AdamW decoupled weight decay on 2-D weights'),
  beta1: unitInterval('`beta1`').default(0.9).describe('AdamW first-moment decay'),
  beta2: unitInterval('`beta2`').default(0.95).describe('AdamW second-moment decay'),
  eps: z.number({ error: wrongType('expected `eps`: a number') }).positive('`eps` must be positive').default(1e-8).describe('AdamW epsilon'),
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

/**
 * Perplexity of one or more models on the recipe's evaluation sets, under the pinned
 * protocol (non-overlapping windows of `context` tokens, last partial window dropped).
 */
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
    .describe('the model-producing stage(s) to evaluate: one id or a list (read it through stageInputs)'),
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

const STAGE_OPTIONS = [Pretrain, Evaluate] as const;

/** The stage kinds that exist, in the order the docs list them. */
export const STAGE_KINDS = ['pretrain', 'evaluate'] as const;
export const StageKind = z.enum(STAGE_KINDS);
export type StageKind = z.infer<typeof StageKind>;

export const Stage = z.discriminatedUnion('kind', STAGE_OPTIONS, {
  error: (issue) => {
    // A non-object stage is reported by the union itself, although the issue type does not list that code.
    if ((issue.code as string) === 'invalid_type') return 'expected a stage: a mapping with `id`, `kind` and that kind\'s keys';
    if (issue.code !== 'invalid_union') return undefined;
    const kind = (issue.input as { kind?: unknown } | undefined)?.kind;
    const known = STAGE_KINDS.join(', ');
    return kind === undefined
      ? `a stage needs \`kind\`: one of ${known}`
      : `unknown stage kind ${JSON.stringify(kind)}: the kinds that exist are ${known}`;
  },
});
export type Stage = z.infer<typeof Stage>;

/** What a stage hands to the stages that name it in `from`. */
export const STAGE_OUTPUT: Record<StageKind, 'model' | 'report'> = {
  pretrain: 'model',
  evaluate: 'report',
};

/** The kinds a stage of each kind may name in `from`. */
export const ACCEPTED_INPUTS: Record<StageKind, readonly StageKind[]> = {
  pretrain: ['pretrain'],
  evaluate: STAGE_KINDS.filter((kind) => STAGE_OUTPUT[kind] === 'model'),
};

/** The ids a stage consumes, as a list (empty for a pretrain stage that starts fresh). */
export function stageInputs(stage: Stage): string[] {
  switch (stage.kind) {
    case 'pretrain':
      return stage.from === undefined ? [] : [stage.from];
    case 'evaluate':
      return typeof stage.from === 'string' ? [stage.from] : stage.from;
    default: {
      const unreachable: never = stage;
      return unreachable;
    }
  }
}
