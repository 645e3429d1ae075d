// docs/recipe.md and docs/db-schema.md against the code: every registered stage kind has its
// section, every key the recipe schema has is documented with its real default, and every column
// of every table is documented.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';

import { parse as parseYaml } from 'yaml';

import { sql } from 'drizzle-orm';
import { getTableConfig } from 'drizzle-orm/sqlite-core';

import { openDb } from '../../activities/store/db';
import { environment } from '../../activities/store/provenance';
import { createRun, linkArtifacts, upsertStage } from '../../activities/store/writes';
import { parseRecipe } from '../../schemas/recipe-text';

import { recipeJsonSchema, STAGE_KINDS } from '../../schemas/recipe';
import * as tables from '../../schemas/tables';

const DOCS = path.resolve(__dirname, '../../docs');

/** The first markdown table after `heading`: first-column key → the row's cells. */
function tableAfter(markdown: string, heading: string): Map<string, string[]> {
  const start = markdown.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `docs have a "${heading}" section`);
  const rows = new Map<string, string[]>();
  let inTable = false;
  for (const line of markdown.slice(start + heading.length + 2).split('\n')) {
    if (line.startsWith('|')) {
      inTable = true;
      const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
      const key = /^`([^`]+)`$/.exec(cells[0]);
      if (key) rows.set(key[1], cells);
    } else if (inTable) {
      break;
    }
  }
  return rows;
}

describe('docs/recipe.md', () => {
  const markdown = readFileSync(path.join(DOCS, 'recipe.md'), 'utf8');
  const schema = recipeJsonSchema() as any;
  // A kind with methods (sparse-train) is a union of one object per method: its section has a
  // table of the keys every method takes, and one `#### method \`<method>\`` table per method.
  const options = (o: any): any[] => (o.oneOf ? o.oneOf.flatMap(options) : [o]);
  const stageSchemas = options(schema.properties.stages.items);
  const kindOf = (o: any) => o.properties.kind.const as string;
  const sections: Array<[string, any, string | null]> = [
    ['## Top level', schema, null],
    ['## `model`', schema.properties.model, null],
    // Every kind in the registry, so a kind added without its docs section fails here.
    ...STAGE_KINDS.flatMap((kind) =>
      stageSchemas.filter((o) => kindOf(o) === kind).map((o): [string, any, string | null] => [`### \`${kind}\``, o, o.properties.method?.const ?? null]),
    ),
    ['## `data`', schema.properties.data.oneOf[0], null],
  ];
  /** A documented default: as written, as a number in another notation (6e-5), or a fraction (1/3). */
  const same = (documented: string, value: unknown) => {
    if (documented === String(value)) return true;
    // An object default is documented as a YAML flow mapping: `{ prompt: "The ", tokens: 48 }`.
    if (typeof value === 'object' && value !== null) return isDeepStrictEqual(parseYaml(documented), value);
    const fraction = /^(\d+)\/(\d+)$/.exec(documented);
    const number = fraction ? Number(fraction[1]) / Number(fraction[2]) : /^[-\d.e+]+$/.test(documented) ? Number(documented) : NaN;
    return number === value;
  };

  it('every registered stage kind has a section', () => {
    for (const kind of STAGE_KINDS) assert.ok(stageSchemas.some((o) => kindOf(o) === kind) && markdown.includes(`\n### \`${kind}\`\n`), kind);
  });

  for (const [heading, object, method] of sections) {
    it(`${heading}${method ? ` (method ${method})` : ''}: the documented keys and defaults are the schema's`, () => {
      const rows = tableAfter(markdown, heading);
      if (method) for (const [key, cells] of tableAfter(markdown.slice(markdown.indexOf(`\n${heading}\n`)), `#### method \`${method}\``)) rows.set(key, cells);
      assert.deepEqual([...rows.keys()].sort(), Object.keys(object.properties).sort());
      for (const [key, property] of Object.entries<any>(object.properties)) {
        const documented = rows.get(key)![2].replace(/`/g, '');
        if ('default' in property) assert.ok(same(documented, property.default), `${heading} ${key} default: documented ${documented}, schema ${property.default}`);
        else if ((object.required ?? []).includes(key)) assert.equal(documented, 'required', `${heading} ${key}`);
        else assert.notEqual(documented, 'required', `${heading} ${key} is optional`);
      }
    });
  }
});

describe('docs/db-schema.md', () => {
  const markdown = readFileSync(path.join(DOCS, 'db-schema.md'), 'utf8');
  const all = [tables.runs, tables.stages, tables.metrics, tables.artifacts, tables.stageArtifacts, tables.events];
  for (const table of all) {
    const config = getTableConfig(table);
    it(`documents every column of ${config.name}`, () => {
      const rows = tableAfter(markdown, `### \`${config.name}\``);
      assert.deepEqual([...rows.keys()].sort(), config.columns.map((c) => c.name).sort());
    });
  }
});

describe('docs/db-schema.md queries', () => {
  const markdown = readFileSync(path.join(DOCS, 'db-schema.md'), 'utf8');
  const queries = [...markdown.matchAll(/```sql\n([^]*?)```/g)].map((m) => m[1]);

  it('every example query runs against the migrated schema', () => {
    assert.ok(queries.length >= 8);
    const { db, close } = openDb({ file: ':memory:' });
    try {
      for (const query of queries) assert.doesNotThrow(() => db.all(sql.raw(query)), query);
    } finally {
      close();
    }
  });

  it('the lineage query follows an artifact into what was derived from it, across runs', () => {
    const lineage = queries.find((q) => q.includes('WITH RECURSIVE derived'))!;
    const file = path.resolve(__dirname, '../../examples/llama-small.yaml');
    const parsed = parseRecipe(readFileSync(file, 'utf8'), file);
    assert.ok(parsed.ok);
    const [base, anneal, report] = parsed.recipe.stages;
    const sha = (c: string) => c.repeat(64);
    const { db, close } = openDb({ file: ':memory:' });
    try {
      const artifact = (c: string, kind: 'model' | 'eval-report') => ({ sha256: sha(c), bytes: 1, kind });
      const run = (id: string) => createRun(db, { id, recipe: parsed.recipe, codeVersion: 'git:x', environment: environment() });
      run('a');
      upsertStage(db, { runId: 'a', stage: base });
      linkArtifacts(db, [{ runId: 'a', stageId: base.id, role: 'model', artifact: artifact('a', 'model') }]);
      run('b');
      for (const stage of [anneal, report]) upsertStage(db, { runId: 'b', stage });
      linkArtifacts(db, [
        { runId: 'b', stageId: anneal.id, role: 'input', artifact: artifact('a', 'model') },
        { runId: 'b', stageId: anneal.id, role: 'model', artifact: artifact('b', 'model') },
        { runId: 'b', stageId: report.id, role: 'input', artifact: artifact('b', 'model') },
        { runId: 'b', stageId: report.id, role: 'report', artifact: artifact('c', 'eval-report') },
      ]);
      const rows = db.all<{ depth: number; kind: string; sha256: string }>(sql.raw(lineage.replace("'SHA256'", `'${sha('a')}'`)));
      assert.deepEqual(
        rows.map((r) => [r.depth, r.kind, r.sha256[0]]),
        [
          [0, 'model', 'a'],
          [1, 'model', 'b'],
          [2, 'eval-report', 'c'],
        ],
      );
    } finally {
      close();
    }
  });
});
