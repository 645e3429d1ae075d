// Stage kind `quantize`: weight-only quantization of a model's block linear weights in a scope
// (METHODS.md §6), by round-to-nearest or GPTQ, in groups of `group` input columns per row, with a
// sensitivity report (gradient, second-order Taylor with a diagonal Fisher, or the
// post-quantization integral, PQI) and optionally ReQuant's dense-and-sparse detach: outliers
// picked per layer under a budget, then significant weights ranked by PQI, kept in 16 bits. The
// zeros of a 2:4 model stay exactly zero. Its activity: activities/stages/quantize.ts.
import { z } from 'zod';
import { nonNegative, positiveInt, Seed, unitInterval, wrongType } from '../fields';
import { inferenceMemory, trainingMemory, weightCopies } from '../memory';
import { hiddenDim } from '../model';
import { defineStage, StageId, stageObject } from './define';
import { SparsityScope } from './prune';

export const QuantMethod = z.enum(['rtn', 'gptq'], { error: wrongType('expected `method`: rtn or gptq') });
export const Sensitivity = z.enum(['none', 'gradient', 'taylor2', 'pqi'], { error: wrongType('expected `sensitivity`: none, gradient, taylor2 or pqi') });
export type Sensitivity = z.infer<typeof Sensitivity>;

const keysError = (where: string, keys: string) => (issue: z.core.$ZodRawIssue) =>
  issue.code === 'unrecognized_keys' ? `unknown key ${issue.keys.map((k) => `\`${k}\``).join(', ')} in \`${where}\`; its keys are ${keys}` : undefined;

const budget = (what: string) => unitInterval(what);

export const GptqSettings = z.strictObject(
  {
    damp: nonNegative('`gptq.damp`').default(0.01).describe("added to the Hessian's diagonal, as a fraction of its mean"),
    actOrder: z.boolean({ error: wrongType('expected `gptq.actOrder`: true or false') }).default(false).describe('quantize columns in descending Hessian-diagonal order'),
  },
  { error: keysError('gptq', 'damp, actOrder') },
);

export const Quantize = stageObject('quantize', {
  id: StageId,
  kind: z.literal('quantize'),
  from: StageId.describe('the model to quantize (dense or 2:4; its zeros stay zero)'),
  scope: SparsityScope.default('all').describe('which block linear weights are quantized: ffn, attn or all'),
  bits: z
    .union([z.literal(2), z.literal(3), z.literal(4), z.literal(8)], { error: (issue) => (issue.input === undefined ? undefined : '`bits` must be 2, 3, 4 or 8') })
    .describe('bits per weight code'),
  group: positiveInt('`group`').default(128).describe('consecutive input columns per scale and zero point; must divide every in-scope layer input width'),
  symmetric: z.boolean({ error: wrongType('expected `symmetric`: true or false') }).default(false).describe('a fixed zero point (2^(bits−1)) instead of one fitted per group'),
  method: QuantMethod.default('rtn').describe('rtn: round to nearest; gptq: GPTQ with a Hessian from calibration windows'),
  gptq: GptqSettings.optional().describe('GPTQ settings (method gptq only; defaults filled in)'),
  seed: Seed.optional().describe("this stage's own seed (its calibration windows), in place of the recipe's"),
  calibration: positiveInt('`calibration` (calibration windows)')
    .default(32)
    .describe("windows of `context` tokens drawn from the training split with the recipe's seed, for GPTQ's Hessians, sensitivity and ReQuant"),
  sensitivity: Sensitivity.default('none').describe('gradient: gᵀΔw; taylor2: gᵀΔw + ½ΔwᵀFΔw, F a diagonal Fisher; pqi: the post-quantization integral'),
  intervals: positiveInt('`intervals`').max(1024, '`intervals` must be at most 1024').default(32).describe('N, the right-endpoint intervals of the PQI path integral'),
  requant: z
    .strictObject(
      {
        outliers: budget('`requant.outliers`').default(0.0045).describe('r_o: share of in-scope weights detached as outliers, allotted per layer'),
        significant: budget('`requant.significant`').default(0.0005).describe('r_s: share detached as significant weights, ranked by PQI'),
        rounds: positiveInt('`requant.rounds`').max(64, '`requant.rounds` must be at most 64').default(2).describe('rounds of the step-wise significant detach (r_s / β)'),
      },
      { error: keysError('requant', 'outliers, significant, rounds') },
    )
    .optional()
    .describe("ReQuant's dense-and-sparse decomposition; the detached weights stay in 16 bits"),
}).superRefine((stage, ctx) => {
  if (stage.gptq !== undefined && stage.method !== 'gptq') ctx.addIssue({ code: 'custom', path: ['gptq'], message: '`gptq` settings need `method: gptq`' });
  if (stage.requant && stage.requant.outliers + stage.requant.significant >= 1) {
    ctx.addIssue({ code: 'custom', path: ['requant'], message: '`requant.outliers` + `requant.significant` must be below 1' });
  }
});
export type Quantize = z.infer<typeof Quantize>;

/** Whether the stage reads calibration windows: GPTQ's Hessians, a sensitivity, ReQuant. */
export const needsCalibration = (stage: Quantize) => stage.method === 'gptq' || stage.sensitivity !== 'none' || stage.requant !== undefined;

/** Whether it takes gradients of the calibration loss (sensitivity, ReQuant's PQI). */
const needsGradients = (stage: Quantize) => stage.sensitivity !== 'none' || (stage.requant?.significant ?? 0) > 0;

export const quantize = defineStage({
  kind: 'quantize',
  schema: Quantize,
  produces: 'model',
  accepts: ['import', 'pretrain', 'prune', 'sparse-train'],
  // GPTQ's settings, filled in, so the recipe as run shows them.
  resolve: (stage) => (stage.method === 'gptq' ? { ...stage, gptq: stage.gptq ?? GptqSettings.parse({}) } : stage),
  check: (stage, recipe, report) => {
    const widths = new Set([recipe.model.dim, ...(stage.scope === 'attn' ? [] : [hiddenDim(recipe.model)])]);
    for (const width of widths) {
      if (width % stage.group !== 0) report(['group'], `\`group\` (${stage.group}) must divide every in-scope layer input width, and ${width} is not a multiple of it`);
    }
  },
  reads: (stage) => ({ train: needsCalibration(stage), eval: [] }),
  // The calibration windows are drawn with the recipe's seed.
  seeded: true,
  steps: () => null,
  memory: (stage, recipe, threads) =>
    needsGradients(stage)
      ? [...trainingMemory(recipe.model, Math.min(stage.calibration, 8), threads), ...weightCopies(recipe.model, ['the weights before quantization', 'the quantization step Δw'])]
      : [...inferenceMemory(recipe.model, Math.min(stage.calibration, 8), threads), ...weightCopies(recipe.model, ['the weights before quantization'])],
  activity: { startToCloseSec: 7 * 86_400, heartbeatSec: 60 },
});
