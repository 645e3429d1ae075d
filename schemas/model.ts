// The recipe's `model:` section: a decoder-only transformer, GPT-2 style or LLaMA style.
//
// Sandbox-pure (imports zod and ./fields only) because Temporal workflows import it. It rejects every
// shape the engine or a later 2:4 stage cannot handle, before anything is submitted:
// the 2:4 pattern groups weights in fours along both dimensions of every linear layer
// (transposable masks use both), so `dim` and the MLP hidden width must divide by 4.
// Tensor names and layouts are in docs/architecture.md.
import { z } from 'zod';
import { positiveInt, wrongType } from './fields';

/** `gpt2`: LayerNorm, GELU MLP, learned positions, tied LM head. `llama`: RMSNorm, SwiGLU, RoPE, untied head. */
export const ModelFamily = z.enum(['gpt2', 'llama']);
export type ModelFamily = z.infer<typeof ModelFamily>;

/** `bytes`: the 256 byte values. `gpt2`: the GPT-2 BPE (50,257 tokens). */
export const Tokenizer = z.enum(['bytes', 'gpt2']);
export type Tokenizer = z.infer<typeof Tokenizer>;

/** Tolerance for `mlpRatio · dim` being an integer: lets `8/3` written as 2.6666666666666665 through. */
const HIDDEN_EPSILON = 1e-6;


export const Model = z
  .strictObject(
    {
      family: ModelFamily.default('gpt2').describe(
        'gpt2: LayerNorm, GELU, learned positions, tied head; llama: RMSNorm, SwiGLU, RoPE, untied head',
      ),
      layers: positiveInt('`layers`').describe('transformer blocks'),
      dim: positiveInt('`dim` (the residual width)').describe('residual width C; divisible by 4 and by `heads`'),
      heads: positiveInt('`heads`').describe('attention heads; dim/heads is the head width (even for llama)'),
      context: positiveInt('`context` (tokens per window)')
        .min(2, '`context` must be at least 2: a window needs a next token to predict')
        .describe('tokens per training and evaluation window'),
      tokenizer: Tokenizer.describe('bytes: 256 byte values; gpt2: GPT-2 BPE, 50,257 tokens'),
      mlpRatio: z
        .number({ error: wrongType('expected `mlpRatio`: a number (MLP hidden width = mlpRatio · dim)') })
        .positive('`mlpRatio` must be positive')
        .default(4)
        .describe('MLP hidden width H = mlpRatio · dim; must be a whole number divisible by 4'),
    },
    {
      error: (issue) => {
        if (issue.code === 'invalid_type' && issue.input !== undefined) {
          return 'expected `model`: a mapping with layers, dim, heads, context and tokenizer';
        }
        return issue.code === 'unrecognized_keys'
          ? `unknown key ${issue.keys.map((k) => `\`${k}\``).join(', ')} in \`model\`; its keys are family, layers, dim, heads, context, tokenizer, mlpRatio`
          : undefined;
      },
    },
  )
  .superRefine((model, ctx) => {
    const { family, dim, heads, mlpRatio } = model;
    if (dim % heads !== 0) {
      ctx.addIssue({ code: 'custom', path: ['heads'], message: `\`heads\` (${heads}) must divide \`dim\` (${dim})` });
    } else if (family === 'llama' && (dim / heads) % 2 !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['heads'],
        message: `a llama head's width dim/heads = ${dim / heads} must be even: RoPE rotates pairs of channels`,
      });
    }
    if (dim % 4 !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['dim'],
        message: `\`dim\` (${dim}) must be divisible by 4: 2:4 sparsity groups weights in fours along it`,
      });
    }
    const hidden = mlpRatio * dim;
    if (Math.abs(hidden - Math.round(hidden)) > HIDDEN_EPSILON) {
      ctx.addIssue({
        code: 'custom',
        path: ['mlpRatio'],
        message: `the MLP hidden width mlpRatio · dim = ${hidden} must be a whole number`,
      });
    } else if (Math.round(hidden) % 4 !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['mlpRatio'],
        message: `the MLP hidden width mlpRatio · dim = ${Math.round(hidden)} must be divisible by 4: 2:4 sparsity groups weights in fours along it`,
      });
    }
  });
export type Model = z.infer<typeof Model>;

/** The MLP hidden width H (`mlp.fc` is [H, C]); validation guarantees it is a whole number divisible by 4. */
export function hiddenDim(model: Model): number {
  return Math.round(model.mlpRatio * model.dim);
}
