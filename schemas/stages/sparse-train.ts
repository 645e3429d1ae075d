// Stage kind `sparse-train`: training towards (or with) 2:4 sparsity by one of the methods of
// METHODS.md §2–§5, each a strict object of its own keys on top of the training keys every
// training stage shares, so a key given to the wrong method (λ to sste, SLoRB to sste) is refused
// with its path. Its activity: activities/stages/sparse-train.ts.
//
//   ste    hard magnitude mask, recomputed every `maskEvery` steps, straight-through gradient
//   srste  ste plus masked decay λ·(1−M)⊙W on the gradient after clipping (§2.2); optionally a
//          transposable mask (§2.6) and a dense fine-tune tail (the result is then dense)
//   sste   soft threshold at the 2nd-smallest magnitude per group, times a per-tensor β computed
//          once from the starting weights and frozen; straight-through (§3)
//   ast    magnitude mask every `maskEvery` steps, decay annealed up over `rampSteps` and kept out of
//          Adam's first moment (§4.3), distillation from the dense starting model (τ, α), and an
//          optional SLoRB branch (§4.5)
//   cast   dense forward; AdamS pushes pruned weights to zero (§5.3), learnable per-row-segment
//          scales (§5.4), distillation without temperature (§5.5), and a final hard prune
//
// `mvue: true` estimates the weight gradient from a 2:4 sparsified activation gradient (§2.7)
// with ste, srste and sste.
import { z } from 'zod';
import { aStage, nonNegative, positiveInt, unitInterval, wrongType } from '../fields';
import { inferenceMemory, trainingMemory } from '../memory';
import { hiddenDim } from '../model';
import { defineStage, StageId } from './define';
import { SparsityScope } from './prune';
import { checkTraining, resolveTraining, trainingKeys } from './training';

export const SPARSE_METHODS = ['ste', 'srste', 'sste', 'ast', 'cast'] as const;
export type SparseMethod = (typeof SPARSE_METHODS)[number];

/** One method's strict object: its unknown-key message names the kind and the method. */
function methodObject<M extends SparseMethod, S extends z.core.$ZodLooseShape>(method: M, shape: S) {
  return z.strictObject(
    {
      id: StageId,
      kind: z.literal('sparse-train'),
      method: z.literal(method),
      ...trainingKeys,
      logEvery: positiveInt('`logEvery`')
        .default(10)
        .describe('steps between sparsity metrics (flip rate, pruned mass, β, λ(t), α(t)) when no mask refresh sets the pace'),
      ...shape,
    },
    {
      error: (issue) =>
        issue.code === 'unrecognized_keys'
          ? `unknown key ${issue.keys.map((k) => `\`${k}\``).join(', ')} in ${aStage('sparse-train')} with method ${method}`
          : undefined,
    },
  );
}

const from = (what: string) => StageId.describe(what);
const optionalFrom = from('the model to start from (dense, or pruned: its masks are the starting masks); absent = fresh init from the seed').optional();
const maskEvery = (defaultSteps: number) =>
  positiveInt('`maskEvery`').default(defaultSteps).describe(`steps between recomputations of the 2:4 mask from the dense weights (default ${defaultSteps})`);
const mvue = z
  .boolean({ error: wrongType('expected `mvue`: true or false') })
  .default(false)
  .describe('estimate the weight gradient from a 2:4 sparsified activation gradient (unbiased, METHODS §2.7)');
const lambda = (defaultValue: number, what: string) => nonNegative('`lambda`').default(defaultValue).describe(what);
const scope = (defaultScope: SparsityScope) => SparsityScope.default(defaultScope).describe(`which block linear weights are made 2:4: ffn, attn or all (default ${defaultScope})`);

export const SteSparseTrain = methodObject('ste', {
  from: optionalFrom,
  scope: scope('ffn'),
  maskEvery: maskEvery(1),
  mvue,
});

export const SrsteSparseTrain = methodObject('srste', {
  from: optionalFrom,
  scope: scope('ffn'),
  maskEvery: maskEvery(40),
  lambda: lambda(6e-5, 'masked decay λ_W: λ·(1−M)⊙W is added to the gradient after clipping (METHODS §2.2)'),
  transposable: z
    .boolean({ error: wrongType('expected `transposable`: true or false') })
    .default(false)
    .describe('a mask that is 2:4 along both dimensions (the best of the 90 4×4 patterns per block)'),
  denseTail: unitInterval('`denseTail`')
    .default(0)
    .describe('fraction of the steps, at the end, trained dense (no mask, no decay): the result is then a dense model'),
  mvue,
});

export const SsteSparseTrain = methodObject('sste', {
  from: optionalFrom,
  scope: scope('ffn'),
  mvue,
});

export const AstSparseTrain = methodObject('ast', {
  from: from('the dense model to retrain: it starts the student and is the frozen teacher'),
  scope: scope('all'),
  maskEvery: maskEvery(10),
  lambda: lambda(1e-4, 'λ_max: the decay on pruned weights after the ramp (METHODS §4.2)'),
  rampSteps: z
    .int({ error: wrongType('expected `rampSteps`: a whole number of steps') })
    .nonnegative('`rampSteps` must not be negative')
    .optional()
    .describe('steps over which λ rises linearly from 0 to `lambda`; default a quarter of `steps`'),
  kdAlpha: unitInterval('`kdAlpha`').default(0.67).describe('weight α of the distillation loss: α·τ²·KL(teacher ‖ student) + (1 − α)·CE'),
  kdTau: z.number({ error: wrongType('expected `kdTau`: a number') }).positive('`kdTau` must be positive').default(2).describe('distillation temperature τ'),
  slorbK: positiveInt('`slorbK`')
    .nullable()
    .default(null)
    .describe('SLoRB group size k: a trainable low-rank branch of rank in/k per sparse layer, initialised to the mean pruned weight; null = no SLoRB'),
});

export const CastSparseTrain = methodObject('cast', {
  from: from('the dense model to retrain: it starts the student and is the frozen teacher'),
  scope: scope('all'),
  maskEvery: maskEvery(10),
  lambda: lambda(1e-4, 'AdamS decay λ on pruned weights, of the order of the gradients (METHODS §5.3)'),
  segments: positiveInt('`segments`').default(2).describe('learnable scales per row of a sparse weight, one per contiguous segment (METHODS §5.4)'),
  kdAlpha: unitInterval('`kdAlpha`').default(1 / 3).describe('weight η of the distillation loss: η·KL(teacher ‖ student) + (1 − η)·CE, without temperature'),
});

const OPTIONS = [SteSparseTrain, SrsteSparseTrain, SsteSparseTrain, AstSparseTrain, CastSparseTrain] as const;

export const SparseTrain = z
  .discriminatedUnion('method', OPTIONS, {
    error: (issue) => {
      if (issue.code !== 'invalid_union') return undefined;
      const method = (issue.input as { method?: unknown } | undefined)?.method;
      const known = SPARSE_METHODS.join(', ');
      return method === undefined ? `a sparse-train stage needs \`method\`: one of ${known}` : `unknown sparse-train method ${JSON.stringify(method)}: the methods are ${known}`;
    },
  })
  .superRefine((stage, ctx) => {
    checkTraining(stage, ctx);
    if (stage.method === 'ast' && stage.rampSteps !== undefined && stage.rampSteps > stage.steps) {
      ctx.addIssue({ code: 'custom', path: ['rampSteps'], message: `\`rampSteps\` (${stage.rampSteps}) must not exceed \`steps\` (${stage.steps})` });
    }
  })
  .transform((stage) => {
    const resolved = resolveTraining(stage);
    return resolved.method === 'ast' ? { ...resolved, rampSteps: resolved.rampSteps ?? Math.floor(resolved.steps / 4) } : resolved;
  });
export type SparseTrain = z.infer<typeof SparseTrain>;

/** Methods that distil from the frozen dense model they start from. */
export const distils = (stage: SparseTrain) => stage.method === 'ast' || stage.method === 'cast';

export const sparseTrain = defineStage({
  kind: 'sparse-train',
  schema: SparseTrain,
  produces: 'model',
  accepts: ['import', 'pretrain', 'prune', 'sparse-train'],
  check: (stage, recipe, report) => {
    // Adapters split each sparse layer's input dimension evenly: dim for the attention and MLP
    // inputs, the MLP hidden width for its output projection.
    const widths = [...(stage.scope === 'ffn' ? [] : [recipe.model.dim]), ...(stage.scope === 'attn' ? [] : [recipe.model.dim, hiddenDim(recipe.model)])];
    const split = stage.method === 'ast' ? { key: 'slorbK', by: stage.slorbK } : stage.method === 'cast' ? { key: 'segments', by: stage.segments } : null;
    if (split?.by) {
      const bad = widths.find((w) => w % split.by! !== 0);
      if (bad !== undefined) report([split.key], `\`${split.key}\` (${split.by}) must divide the input width ${bad} of every sparse layer in scope ${stage.scope}`);
    }
  },
  reads: (stage, recipe) => ({ train: true, eval: stage.evalEvery === null ? [] : Object.keys(recipe.data.eval) }),
  seeded: true,
  steps: (stage) => stage.steps,
  memory: (stage, recipe, threads) => [
    ...trainingMemory(recipe.model, stage.batch / stage.accum, threads),
    ...(distils(stage) ? inferenceMemory(recipe.model, stage.batch / stage.accum, threads).map((p) => ({ ...p, what: `teacher ${p.what}` })) : []),
  ],
  activity: { startToCloseSec: 30 * 86_400, heartbeatSec: 60 },
});
