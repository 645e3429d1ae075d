// Reading a recipe file's text: YAML or JSON in, a validated Recipe or path-named issues out.
//
// Kept apart from ./recipe.ts because the yaml package imports node:process, which the
// Temporal workflow sandbox forbids; the CLI and activities import this module, workflows
// import ./recipe.ts. Every issue names its path (`stages[2].from`) and, where the node
// exists in the text, its line:column, so an error points at the line to fix.
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import { z } from 'zod';
import { Recipe, type RecipeIssue } from './recipe';

export type ParseRecipeResult = { ok: true; recipe: Recipe } | { ok: false; issues: RecipeIssue[]; message: string };

/**
 * What a step between reading the text and checking the schema (`expand`) throws when the recipe
 * names something it cannot use, with the path of the key at fault, so the issue is located in
 * the text like a schema issue.
 */
export class RecipeExpansionError extends Error {
  constructor(
    readonly path: PropertyKey[],
    message: string,
  ) {
    super(message);
  }
}

export interface ParseRecipeOptions {
  /**
   * Fills in what the text leaves to files it names (a Hugging Face folder's architecture, a
   * tokenizer file's digest) before the schema checks the result; throws RecipeExpansionError.
   */
  expand?: (value: unknown) => unknown;
}

/**
 * Parses a recipe file's text. JSON when the name ends in `.json` (or, for a name that is
 * neither .json nor .yaml/.yml, when the text starts with `{`), YAML otherwise. Syntax
 * errors carry line:column; schema issues carry the path and, where the node exists in
 * the text, its line:column. `message` lists the issues in file order, laid out like
 * zod's `z.prettifyError`.
 */
export function parseRecipe(text: string, sourceName: string, options: ParseRecipeOptions = {}): ParseRecipeResult {
  const json = /\.json$/i.test(sourceName) || (!/\.ya?ml$/i.test(sourceName) && text.trimStart().startsWith('{'));
  const lineCounter = new LineCounter();
  // JSON is YAML 1.2 too, so one document serves both formats for locating nodes.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const fail = (issues: RecipeIssue[]): ParseRecipeResult => ({ ok: false, issues, message: formatIssues(issues, sourceName) });

  let value: unknown;
  if (json) {
    // JSON.parse, not the YAML reader, decides what is valid JSON: YAML would accept trailing commas and comments.
    try {
      value = JSON.parse(text);
    } catch (error) {
      const position = /position (\d+)/.exec((error as Error).message);
      const at = position ? lineCounter.linePos(Number(position[1])) : null;
      return fail([syntaxIssue('JSON', (error as Error).message, at)]);
    }
    // JSON.parse keeps the last of two equal keys; a recipe with both is ambiguous, so refuse it.
    const duplicates = doc.errors.filter((error) => error.code === 'DUPLICATE_KEY');
    if (duplicates.length > 0) {
      return fail(duplicates.map((error) => syntaxIssue('JSON', error.message, lineCounter.linePos(error.pos[0]))));
    }
  } else {
    if (doc.errors.length > 0) {
      return fail(doc.errors.map((error) => syntaxIssue('YAML', error.message, lineCounter.linePos(error.pos[0]))));
    }
    try {
      value = doc.toJS();
    } catch (error) {
      // Composition errors surface here, e.g. an alias to an anchor that was never set.
      return fail([syntaxIssue('YAML', (error as Error).message, null)]);
    }
  }

  const located = doc.errors.length === 0;
  if (options.expand) {
    try {
      value = options.expand(value);
    } catch (error) {
      if (!(error instanceof RecipeExpansionError)) throw error;
      const at = located ? locate(doc.contents, error.path, lineCounter) : null;
      return fail([{ path: z.core.toDotPath(error.path), message: error.message, line: at?.line ?? null, column: at?.col ?? null }]);
    }
  }

  const parsed = Recipe.safeParse(value, { error: missingKey });
  if (parsed.success) return { ok: true, recipe: parsed.data };
  const issues = parsed.error.issues.flatMap((issue) => {
    // One issue per unknown key, with the key in the path, so the path names the culprit (`stages[2].method`).
    const paths = issue.code === 'unrecognized_keys' ? issue.keys.map((key) => [...issue.path, key]) : [issue.path];
    return paths.map((path): RecipeIssue => {
      const at = located ? locate(doc.contents, path, lineCounter) : null;
      return { path: z.core.toDotPath(path), message: issue.message, line: at?.line ?? null, column: at?.col ?? null };
    });
  });
  issues.sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0));
  return fail(issues);
}

/** Issues as `✖ message` / `  → at path (source:line:col)` lines, the layout of `z.prettifyError`. */
export function formatIssues(issues: readonly RecipeIssue[], sourceName: string): string {
  return issues
    .map((issue) => {
      const where = issue.line === null ? sourceName : `${sourceName}:${issue.line}:${issue.column}`;
      const at = issue.path === '' ? `  → at ${where}` : `  → at ${issue.path} (${where})`;
      return `✖ ${issue.message}\n${at}`;
    })
    .join('\n');
}

/** The parse-level error map: the schemas word wrong types themselves and leave missing keys to this. */
function missingKey(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== 'invalid_type' || issue.input !== undefined) return undefined;
  const key = issue.path?.at(-1);
  return key === undefined ? undefined : `missing required key \`${String(key)}\``;
}

function syntaxIssue(format: 'JSON' | 'YAML', message: string, at: { line: number; col: number } | null): RecipeIssue {
  // The location goes in line/column; strip the parsers' own position suffixes from the sentence.
  const firstLine = message
    .split('\n')[0]
    .replace(/ at line \d+, column \d+:?$/, '')
    .replace(/ in JSON at position \d+.*$/, '');
  return { path: '', message: `${format} syntax error: ${firstLine}`, line: at?.line ?? null, column: at?.col ?? null };
}

/** The line:column of the deepest node along `path` that exists in the text (the key, for a mapping entry). */
function locate(root: unknown, path: readonly PropertyKey[], lineCounter: LineCounter): { line: number; col: number } | null {
  let node = root as YamlNode | null;
  let offset = node?.range?.[0];
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
      if (!pair) break;
      offset = (pair.key as YamlNode).range?.[0] ?? offset;
      node = pair.value as YamlNode | null;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as YamlNode | undefined;
      if (!item) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset === undefined ? null : lineCounter.linePos(offset);
}
