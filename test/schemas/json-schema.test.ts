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

  it('lists every stage kind, each a closed object', () => {
    const options = schema.properties.stages.items.oneOf as Array<Record<string, any>>;
    assert.deepEqual(
      options.map((o) => o.properties.kind.const),
      [...STAGE_KINDS],
    );
    for (const option of options) assert.equal(option.additionalProperties, false);
  });

  it('describes the input side: defaults are optional and shown', () => {
    const pretrain = schema.properties.stages.items.oneOf[0];
    assert.equal(pretrain.properties.weightDecay.default, 0.1);
    assert.ok(!pretrain.required.includes('weightDecay'));
    assert.ok(pretrain.required.includes('steps'));
    assert.match(pretrain.properties.minLr.description, /lr\/10/);
  });
});
