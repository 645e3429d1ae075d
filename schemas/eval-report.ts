// The report an `evaluate` stage stores (artifact kind `eval-report`, role `report`): for each
// model it evaluated, its perplexity on every set under each runtime, with the protocol and the
// exact text it was measured on, the model's size and sparsity measured from its weights, a greedy
// sample, and (runtime `both`) how far the runtimes agree. Only what the evaluation computes: no
// timing, thread count or machine (those are metrics and the stage's environment, in the
// database), so the same evaluation gives the same bytes anywhere. Version 3 moved them out.
import { z } from 'zod';
import { PerplexityProtocol, StreamInfo } from './data';

export const EVAL_REPORT_FORMAT = 'sieve-eval-report';
export const EVAL_REPORT_VERSION = 3;

export const RuntimeName = z.enum(['native', 'onnxruntime']);
export type RuntimeName = z.infer<typeof RuntimeName>;

/** Perplexity on one evaluation set under one runtime. */
export const SetReport = z.strictObject({
  set: z.string(),
  perplexity: z.number(),
  meanNll: z.number(),
  predicted: z.int().positive(),
  protocol: PerplexityProtocol,
  stream: StreamInfo,
});
export type SetReport = z.infer<typeof SetReport>;

export const RuntimeReport = z.strictObject({
  runtime: RuntimeName,
  sets: z.array(SetReport),
  /** Windows per forward pass (a setting: the perplexity does not depend on it). */
  batch: z.int().positive(),
});
export type RuntimeReport = z.infer<typeof RuntimeReport>;

/** Measured from the weights (activities/eval/measures.ts). */
export const ModelMeasures = z.strictObject({
  params: z.int().nonnegative(),
  nonzeroParams: z.int().nonnegative(),
  twoFour: z.number().min(0).max(1),
  /** The same share within the MLP weights and within the attention projections. */
  twoFourByScope: z.strictObject({ ffn: z.number().min(0).max(1), attn: z.number().min(0).max(1) }),
  bytesDense: z.int().nonnegative(),
  bytes: z.int().nonnegative(),
  bitsPerWeight: z.number().nonnegative(),
});
export type ModelMeasures = z.infer<typeof ModelMeasures>;

export const ModelReport = z.strictObject({
  measures: ModelMeasures,
  runtimes: z.array(RuntimeReport).min(1),
  /** The greedy continuation of the stage's prompt, from the first runtime. */
  sample: z.strictObject({ prompt: z.string(), text: z.string(), tokens: z.array(z.int().nonnegative()) }),
  /** Runtime `both`: ONNX Runtime's perplexity relative to the native one, per set. */
  agreement: z.array(z.strictObject({ set: z.string(), native: z.number(), onnxruntime: z.number(), relative: z.number() })).nullable(),
});
export type ModelReport = z.infer<typeof ModelReport>;

export const EvalReport = z.strictObject({
  format: z.literal(EVAL_REPORT_FORMAT),
  version: z.literal(EVAL_REPORT_VERSION),
  stage: z.string(),
  runtime: z.enum(['native', 'onnxruntime', 'both']),
  /** By evaluated stage id, in `from` order. */
  models: z.record(z.string(), ModelReport),
});
export type EvalReport = z.infer<typeof EvalReport>;
