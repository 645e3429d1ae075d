// `sieve schema`: the recipe's JSON Schema, as editors consume it.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { recipeJsonSchema, STAGE_KINDS } from '../../schemas/recipe';

describe('recipeJsonSchema', () => {
  const text = JSON.stringify(recipeJsonSchema(), null, 2);
  const schema = JSON.parse(text) as Record<string, any>;

  it('is a draft 2020-12 JSON Schema for an object with the recipe keys', () => {
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
    assert.equal(schema.type, 'object');
    assert.equal(schema.additionalProperties, false);
    assert.deepEqual(Object.keys(schema.properties).sort(), ['data', 'device', 'model', 'name', 'seed', 'stages']);
    assert.deepEqual(schema.required.sort(), ['data', 'model', 'name', 'stages']);
  });

  it('lists every stage kind (a kind with methods as one closed object per method), each a closed object', () => {
    const flatten = (o: Record<string, any>): Array<Record<string, any>> => (o.oneOf ? o.oneOf.flatMap(flatten) : [o]);
    const options = flatten(schema.properties.stages.items);
    assert.deepEqual([...new Set(options.map((o) => o.properties.kind.const))], [...STAGE_KINDS]);
    for (const option of options) assert.equal(option.additionalProperties, false);
    const methods = options.filter((o) => o.properties.kind.const === 'sparse-train').map((o) => o.properties.method.const);
    assert.deepEqual(methods, ['ste', 'srste', 'sste', 'ast', 'cast']);
  });

  it('describes the input side: defaults are optional and shown', () => {
    const pretrain = schema.properties.stages.items.oneOf.find((o: any) => o.properties.kind.const === 'pretrain');
    assert.equal(pretrain.properties.weightDecay.default, 0.1);
    assert.ok(!pretrain.required.includes('weightDecay'));
    assert.ok(pretrain.required.includes('steps'));
    assert.match(pretrain.properties.minLr.description, /lr\/10/);
  });
});
