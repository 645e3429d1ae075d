// The files a recipe's `model:` section names, read when the recipe is loaded so that the run
// records what they were: `model.import` (a Hugging Face checkpoint folder, whose config.json
// supplies every architecture key, and whose files are summed up in one digest) and a
// `tokenizer: { file }` (its sha256 and vocabulary size). The recipe as run holds the result —
// `import: { path, sha256 }`, `tokenizer: { file, sha256, vocab }` — so the import stage and the
// tokenizer can refuse files that changed after the run was submitted.
//
// A key the recipe gives itself must agree with the file; disagreement is an issue located at that
// key (`model.layers is 4 but …/config.json says num_hidden_layers = 2`).
import path from 'node:path';

import { parseDocument } from 'yaml';

import { getTokenizer } from '../activities/data/tokenizer';
import { readHfConfig, type HfModelConfig } from '../kernels/hf';
import { checkpointDigest, fileSha256 } from '../kernels/hf/digest';
import { RecipeExpansionError } from '../schemas/recipe-text';

interface ImportSource {
  dir: string;
  config: HfModelConfig;
  sha256: string;
}

interface TokenizerSource {
  file: string;
  sha256: string;
  vocab: number;
}

/** What the recipe's files said, or the error that reading them gave (reported at the key that named them). */
export interface ModelSources {
  import?: ImportSource | RecipeExpansionError;
  tokenizer?: TokenizerSource | RecipeExpansionError;
}

type Section = Record<string, unknown>;

const isSection = (v: unknown): v is Section => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The `model:` mapping of a recipe's text, or null when the text does not parse to one (the parser reports why). */
export function modelSectionOf(text: string): Section | null {
  try {
    const value: unknown = parseDocument(text).toJS();
    return isSection(value) && isSection(value.model) ? value.model : null;
  } catch {
    return null;
  }
}

/** Reads the files `model` names, relative paths against the recipe's folder. */
export async function readModelSources(model: Section | null, baseDir: string): Promise<ModelSources> {
  const sources: ModelSources = {};
  if (model === null) return sources;
  let tokenizerFile: { file: string; at: PropertyKey[] } | null = null;
  if (typeof model.import === 'string' && model.import !== '') {
    const dir = path.resolve(baseDir, model.import);
    try {
      const config = await readHfConfig(dir);
      sources.import = { dir, config, sha256: checkpointDigest(dir).sha256 };
      if (config.tokenizer.kind === 'file') tokenizerFile = { file: config.tokenizer.path, at: ['model', 'import'] };
    } catch (err) {
      sources.import = new RecipeExpansionError(['model', 'import'], (err as Error).message);
    }
  }
  if (isSection(model.tokenizer) && typeof model.tokenizer.file === 'string' && model.tokenizer.file !== '') {
    tokenizerFile = { file: path.resolve(baseDir, model.tokenizer.file), at: ['model', 'tokenizer', 'file'] };
  }
  if (tokenizerFile) {
    try {
      const { sha256 } = fileSha256(tokenizerFile.file);
      sources.tokenizer = { file: tokenizerFile.file, sha256, vocab: getTokenizer({ file: tokenizerFile.file, sha256 }).vocabSize };
    } catch (err) {
      sources.tokenizer = new RecipeExpansionError(tokenizerFile.at, (err as Error).message);
    }
  }
  return sources;
}

/** The recipe value with `model:` completed from its sources; throws RecipeExpansionError at the key at fault. */
export function expandModel(value: unknown, sources: ModelSources): unknown {
  if (!isSection(value) || !isSection(value.model)) return value;
  let model: Section = value.model;
  if (sources.import) model = withImport(model, sources.import);
  if (sources.tokenizer) model = withTokenizerFile(model, sources.tokenizer);
  return { ...value, model };
}

function withImport(model: Section, source: ImportSource | RecipeExpansionError): Section {
  if (source instanceof RecipeExpansionError) throw source;
  const { config, dir } = source;
  const implied: Section = {
    family: config.family,
    layers: config.layers,
    dim: config.dim,
    heads: config.heads,
    context: config.context,
    tokenizer: config.tokenizer.kind === 'gpt2' ? 'gpt2' : { file: config.tokenizer.path },
    mlpRatio: config.mlpHidden / config.dim,
    vocab: config.vocab,
    normEps: config.normEps,
    ...(config.ropeTheta === null ? {} : { ropeTheta: config.ropeTheta }),
  };
  for (const [key, given] of Object.entries(model)) {
    if (key === 'import' || !(key in implied)) continue;
    if (!agrees(key, given, implied[key], config)) {
      throw new RecipeExpansionError(
        ['model', key],
        `\`model.${key}\` is ${JSON.stringify(given)} but ${path.join(dir, 'config.json')} implies ${JSON.stringify(implied[key])}; leave it out to take the checkpoint's`,
      );
    }
  }
  return { ...implied, ...model, tokenizer: implied.tokenizer, import: { path: dir, sha256: source.sha256 } };
}

function agrees(key: string, given: unknown, implied: unknown, config: HfModelConfig): boolean {
  if (key === 'mlpRatio') return typeof given === 'number' && Math.round(given * config.dim) === config.mlpHidden;
  if (key === 'tokenizer') return isSection(given) && isSection(implied) ? given.file === implied.file : given === implied;
  return given === implied;
}

function withTokenizerFile(model: Section, source: TokenizerSource | RecipeExpansionError): Section {
  if (source instanceof RecipeExpansionError) throw source;
  const given = isSection(model.tokenizer) ? model.tokenizer : {};
  for (const key of ['sha256', 'vocab'] as const) {
    if (given[key] !== undefined && given[key] !== source[key]) {
      throw new RecipeExpansionError(['model', 'tokenizer', key], `\`model.tokenizer.${key}\` is ${JSON.stringify(given[key])} but ${source.file} has ${JSON.stringify(source[key])}`);
    }
  }
  return { ...model, tokenizer: { ...given, file: source.file, sha256: source.sha256, vocab: source.vocab } };
}
