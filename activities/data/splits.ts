// Splits: a recipe's `data` section resolved into token streams.
//
// The train split is the section's top-level corpus with its `train` selector; each
// `eval` entry is an independent source. Resolution is a pure function of the section,
// the tokenizer and (for files) their contents, so it is deterministic; each stream
// carries the sha256 of the exact text it came from, for the run record. Streams too
// short to use are rejected here, before any training starts, naming the recipe path.
import { resolve } from 'node:path';

import {
  type DataSection,
  type DataSource,
  MOBY_DICK_ITEM_COUNT,
  SOTU_FIRST_YEAR,
  SOTU_LAST_YEAR,
  type StreamInfo,
  type TokenizerSpec,
  tokenizerKey,
  trainSource,
} from '../../schemas/data';
import { tokenizeCorpus } from './corpus';

export interface DataStream {
  info: StreamInfo;
  /** Shared with the corpus cache: treat as read-only. */
  tokens: Int32Array;
}

export interface ResolvedData {
  train: DataStream;
  /** In the recipe's key order. */
  eval: DataStream[];
  /** Evaluation sets that share text with the train split (legal, but worth a line in the log). */
  warnings: string[];
}

export interface ResolveOptions {
  tokenizer: TokenizerSpec;
  /** The model's context length T: training draws windows of T + 1 tokens, perplexity windows of T. */
  context: number;
  /** Directory relative `files` paths are resolved against; default the working directory. */
  baseDir?: string;
}

function stream(name: string, source: DataSource, options: ResolveOptions): DataStream {
  const corpus = tokenizeCorpus(source, options.tokenizer, { baseDir: options.baseDir });
  return {
    tokens: corpus.tokens,
    info: {
      name,
      source,
      tokenizer: options.tokenizer,
      sha256: corpus.sha256,
      bytes: corpus.bytes,
      tokens: corpus.tokens.length,
      description: corpus.description,
    },
  };
}

/** Whether two sources share any item, speech or file. */
function overlaps(a: DataSource, b: DataSource, baseDir: string): boolean {
  const intersect = ([a0, a1]: readonly [number, number], [b0, b1]: readonly [number, number]) => a0 <= b1 && b0 <= a1;
  if (a.corpus === 'sotu' && b.corpus === 'sotu') {
    const all = [SOTU_FIRST_YEAR, SOTU_LAST_YEAR] as const;
    return intersect(a.years ?? all, b.years ?? all);
  }
  if (a.corpus === 'moby-dick' && b.corpus === 'moby-dick') {
    const all = [0, MOBY_DICK_ITEM_COUNT - 1] as const;
    return intersect(a.items ?? all, b.items ?? all);
  }
  if (a.corpus === 'files' && b.corpus === 'files') {
    const trainPaths = new Set(a.paths.map((p) => resolve(baseDir, p)));
    return b.paths.some((p) => trainPaths.has(resolve(baseDir, p)));
  }
  return false;
}

/** Resolve a recipe's data section into the train stream and the named eval streams. */
export function resolveData(data: DataSection, options: ResolveOptions): ResolvedData {
  const { context } = options;
  if (!Number.isInteger(context) || context < 2) {
    throw new Error(`context must be an integer ≥ 2 to split data into windows, got ${context}`);
  }
  const train = stream('train', trainSource(data), options);
  if (train.tokens.length < context + 1) {
    throw new Error(
      `data.train (${train.info.description}) gives ${train.tokens.length} tokens with the ${tokenizerKey(options.tokenizer)} tokenizer, ` +
        `fewer than one training window of context + 1 = ${context + 1} tokens`,
    );
  }
  const evals: DataStream[] = [];
  const warnings: string[] = [];
  for (const [name, source] of Object.entries(data.eval)) {
    const evalStream = stream(name, source, options);
    if (evalStream.tokens.length < context) {
      throw new Error(
        `data.eval.${name} (${evalStream.info.description}) gives ${evalStream.tokens.length} tokens with the ` +
          `${tokenizerKey(options.tokenizer)} tokenizer, fewer than one perplexity window of context = ${context} tokens`,
      );
    }
    if (overlaps(train.info.source, source, options.baseDir ?? process.cwd())) {
      warnings.push(`data.eval.${name} shares text with the train split, so its perplexity is not held-out`);
    }
    evals.push(evalStream);
  }
  return { train, eval: evals, warnings };
}
