// Temporal workflows import the recipe schemas, and the workflow sandbox allows no Node
// built-ins or native modules: these files may import zod and each other, nothing else.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

const SCHEMAS = path.resolve(__dirname, '../../schemas');
const PURE = ['recipe.ts', 'stages.ts', 'model.ts', 'data.ts', 'canonical.ts'];

describe('sandbox-pure schemas', () => {
  for (const file of PURE) {
    it(`${file} imports only zod and other sandbox-pure schemas`, () => {
      const source = readFileSync(path.join(SCHEMAS, file), 'utf8');
      const specifiers = [...source.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]);
      for (const specifier of specifiers) {
        const allowed = specifier === 'zod' || (specifier.startsWith('./') && PURE.includes(`${specifier.slice(2)}.ts`));
        assert.ok(allowed, `${file} imports ${specifier}`);
      }
      assert.doesNotMatch(source, /\brequire\(|\bprocess\.|\bimport\(/, `${file} reaches outside the sandbox`);
    });
  }
});
