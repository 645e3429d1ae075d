// Temporal bundles the workflows into a sandbox that allows no Node built-ins and no native
// modules. Every module a workflow reaches through value imports (type-only imports are erased)
// must therefore import only zod, the Temporal workflow API, and other such modules. Walks the
// import graph from workflows/index.ts, so a new schema file is checked as soon as it is used.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

const ROOT = path.resolve(__dirname, '../..');
const ALLOWED_PACKAGES = ['zod', '@temporalio/workflow'];

/** The project file a relative specifier names (x.ts or x/index.ts). */
function resolveFile(from: string, specifier: string): string {
  const base = path.resolve(path.dirname(from), specifier);
  const file = [`${base}.ts`, path.join(base, 'index.ts')].find(existsSync);
  assert.ok(file, `${path.relative(ROOT, from)} imports ${specifier}, which is not a TypeScript file`);
  return file;
}

/** Value imports and re-exports of a file (`import type` and `export type` are erased by the bundler). */
function valueImports(source: string): string[] {
  return [...source.matchAll(/^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]/gm)].filter((m) => !m[2]).map((m) => m[3]);
}

function reachable(entry: string): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    const specifiers = valueImports(readFileSync(file, 'utf8'));
    seen.set(file, specifiers);
    for (const s of specifiers) if (s.startsWith('.')) visit(resolveFile(file, s));
  };
  visit(entry);
  return seen;
}

describe('the workflow sandbox', () => {
  const graph = reachable(path.join(ROOT, 'workflows', 'index.ts'));

  it('reaches the recipe schemas and the stage registry', () => {
    const files = [...graph.keys()].map((f) => path.relative(ROOT, f));
    for (const expected of ['schemas/recipe.ts', 'schemas/stages/index.ts', 'workflows/contract.ts']) assert.ok(files.includes(expected), expected);
  });

  for (const [file, specifiers] of graph) {
    const name = path.relative(ROOT, file);
    it(`${name} imports only zod, the workflow API and sandbox-pure modules`, () => {
      for (const s of specifiers) assert.ok(s.startsWith('.') || ALLOWED_PACKAGES.includes(s), `${name} imports ${s}`);
      const source = readFileSync(file, 'utf8');
      assert.doesNotMatch(source, /\brequire\(|\bprocess\.|\bimport\(/, `${name} reaches outside the sandbox`);
    });
  }
});
