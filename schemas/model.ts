// The recipe's `model:` section: a decoder-only transformer, GPT-2 style or LLaMA style.
//
// Sandbox-pure (imports zod, ./fields and ./data only) because Temporal workflows import it. It
// rejects every shape the engine or a later 2:4 stage cannot handle, before anything is
// submitted: the engine's own limits (kernels/core/layout.cc: at most 4096 layers, widths up to
// 2^24, at most 2^31 − 1 parameters), and the 2:4 pattern, which groups weights in fours along
// both dimensions of every linear layer (transposable masks use both), so `dim` and the MLP
// hidden width must divide by 4. Tensor names and layouts are in docs/architecture.md.
import { z } from 'zod';
import { TokenizerSpec, type TokenizerName } from './data';
import { positive, positiveInt, wrongType } from './fields';

/** `gpt2`: LayerNorm, GELU MLP, learned positions, tied LM head. `llama`: RMSNorm, SwiGLU, RoPE, untied head. */
export const ModelFamily = z.enum(['gpt2', 'llama']);
export type ModelFamily = z.infer<typeof ModelFamily>;

/** Vocabulary size of each built-in tokenizer (activities/data/tokenizer.ts implements them; a test checks they agree). */
export const VOCAB_SIZE: Record<TokenizerName, number> = { bytes: 256, gpt2: 50_257 };

/** The engine's defaults for what a recipe may leave out: LayerNorm/RMSNorm epsilon, the RoPE base. */
export const DEFAULT_NORM_EPS = 1e-5;
export const DEFAULT_ROPE_THETA = 10_000;

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex sha256');

/**
 * A Hugging Face checkpoint folder the model comes from (config.json, safetensors, tokenizer).
 * Written as the folder's path; sieve reads config.json when it loads the recipe, fills in every
 * architecture key from it, and records the folder with a digest of its files (a changed
 * checkpoint is refused by the `import` stage, not silently used).
 */
export const ModelImport = z.union(
  [
    z.string().min(1, '`import` must not be empty'),
    z.strictObject({ path: z.string().min(1), sha256: Sha256Hex }),
  ],
  { error: wrongType('expected `import`: the path of a Hugging Face checkpoint folder') },
);
export type ModelImport = z.infer<typeof ModelImport>;

/** Tolerance for `mlpRatio · dim` being an integer: lets `8/3` written as 2.6666666666666665 through. */
const HIDDEN_EPSILON = 1e-6;

/** The engine's limits (kernels/core/layout.cc `config_check`). */
export const MAX_LAYERS = 4096;
export const MAX_WIDTH = 2 ** 24;
export const MAX_PARAMETERS = 2 ** 31 - 1;

const width = (what: string) => positiveInt(what).max(MAX_WIDTH, `${what} must be at most ${MAX_WIDTH} (2^24), the engine's limit`);


export const Model = z
  .strictObject(
    {
      family: ModelFamily.default('gpt2').describe(
        'gpt2: LayerNorm, GELU, learned positions, tied head; llama: RMSNorm, SwiGLU, RoPE, untied head',
      ),
      layers: positiveInt('`layers`').max(MAX_LAYERS, `\`layers\` must be at most ${MAX_LAYERS}, the engine's limit`).describe('transformer blocks'),
      dim: width('`dim` (the residual width)').describe('residual width C; divisible by 4 and by `heads`'),
      heads: positiveInt('`heads`').describe('attention heads; dim/heads is the head width (even for llama)'),
      context: width('`context` (tokens per window)')
        .min(2, '`context` must be at least 2: a window needs a next token to predict')
        .describe('tokens per training and evaluation window'),
      tokenizer: TokenizerSpec.describe('bytes: 256 byte values; gpt2: GPT-2 BPE, 50,257 tokens; { file }: a Hugging Face tokenizer.json'),
      mlpRatio: z
        .number({ error: wrongType('expected `mlpRatio`: a number (MLP hidden width = mlpRatio · dim)') })
        .positive('`mlpRatio` must be positive')
        .default(4)
        .describe('MLP hidden width H = mlpRatio · dim; must be a whole number divisible by 4'),
      vocab: positiveInt('`vocab`')
        .max(MAX_WIDTH, `\`vocab\` must be at most ${MAX_WIDTH} (2^24), the engine's limit`)
        .optional()
        .describe("embedding rows, when more than the tokenizer's vocabulary (a checkpoint's padded vocabulary); default the tokenizer's"),
      normEps: positive('`normEps`').default(DEFAULT_NORM_EPS).describe('epsilon of LayerNorm (gpt2) or RMSNorm (llama)'),
      ropeTheta: positive('`ropeTheta`').optional().describe(`llama only: the RoPE base θ (default ${DEFAULT_ROPE_THETA})`),
      import: ModelImport.optional().describe('a Hugging Face checkpoint folder: the architecture comes from its config.json, the weights through an `import` stage'),
    },
    {
      error: (issue) => {
        if (issue.code === 'invalid_type' && issue.input !== undefined) {
          return 'expected `model`: a mapping with layers, dim, heads, context and tokenizer';
        }
        return issue.code === 'unrecognized_keys'
          ? `unknown key ${issue.keys.map((k) => `\`${k}\``).join(', ')} in \`model\`; its keys are family, layers, dim, heads, context, tokenizer, mlpRatio, vocab, normEps, ropeTheta, import`
          : undefined;
      },
    },
  )
  .superRefine((model, ctx) => {
    const { family, dim, heads, mlpRatio } = model;
    if (family !== 'llama' && model.ropeTheta !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['ropeTheta'], message: '`ropeTheta` is for the llama family (gpt2 learns its positions)' });
    }
    const tokens = tokenizerVocab(model.tokenizer);
    if (model.vocab !== undefined && tokens !== null && model.vocab < tokens) {
      ctx.addIssue({ code: 'custom', path: ['vocab'], message: `\`vocab\` (${model.vocab}) is smaller than the tokenizer's vocabulary (${tokens}): some token ids would have no embedding` });
    }
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
    } else if (Math.round(hidden) > MAX_WIDTH) {
      ctx.addIssue({ code: 'custom', path: ['mlpRatio'], message: `the MLP hidden width mlpRatio · dim = ${Math.round(hidden)} exceeds the engine's limit of ${MAX_WIDTH} (2^24)` });
    } else if (Math.round(hidden) % 4 !== 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['mlpRatio'],
        message: `the MLP hidden width mlpRatio · dim = ${Math.round(hidden)} must be divisible by 4: 2:4 sparsity groups weights in fours along it`,
      });
    }
    const params = vocabSize(model) === null ? 0 : parameterCount({ ...model, mlpRatio: Math.round(hidden) / dim });
    if (params > MAX_PARAMETERS) {
      ctx.addIssue({
        code: 'custom',
        path: ['layers'],
        message: `this model would have ${params.toLocaleString('en-US')} parameters; the engine holds at most ${MAX_PARAMETERS.toLocaleString('en-US')} (2^31 − 1)`,
      });
    }
  });
export type Model = z.infer<typeof Model>;

/** The MLP hidden width H (`mlp.fc` is [H, C]); validation guarantees it is a whole number divisible by 4. */
export function hiddenDim(model: Model): number {
  return Math.round(model.mlpRatio * model.dim);
}

/**
 * The number of parameters of the engine's model for this section (its tensor table,
 * kernels/core/layout.cc): GPT-2 ties the LM head to the token embedding and has biases and
 * learned positions; LLaMA has neither, an untied head, and gate, up and down MLP matrices.
 */
export function parameterCount(model: Pick<Model, 'family' | 'layers' | 'dim' | 'context' | 'tokenizer' | 'mlpRatio' | 'vocab'>): number {
  const C = model.dim;
  const H = Math.round(model.mlpRatio * C);
  const V = vocabSize(model);
  if (V === null) throw new Error('the vocabulary of a tokenizer file is known once sieve has read the file');
  if (model.family === 'gpt2') {
    const perLayer = 4 * C + 3 * C * C + 3 * C + C * C + C + 2 * H * C + H + C;
    return model.layers * perLayer + V * C + model.context * C + 2 * C;
  }
  return model.layers * (2 * C + 4 * C * C + 3 * H * C) + 2 * V * C + C;
}

/** A tokenizer's vocabulary size, or null for a tokenizer file sieve has not read yet. */
export function tokenizerVocab(tokenizer: TokenizerSpec): number | null {
  return typeof tokenizer === 'string' ? VOCAB_SIZE[tokenizer] : (tokenizer.vocab ?? null);
}

/** The model's embedding rows: `vocab` when given, else the tokenizer's vocabulary (null: not read yet). */
export function vocabSize(model: Pick<Model, 'tokenizer' | 'vocab'>): number | null {
  return model.vocab ?? tokenizerVocab(model.tokenizer);
}
