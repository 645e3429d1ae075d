// The recipe: both examples parse to explicit configurations; malformed recipes (unknown
// keys, wrong types, unknown kinds, graph errors, syntax errors) are rejected with messages
// that name the culprit path and, for files, the line:column.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';

import { Recipe, stageCacheConfig, topologicalOrder } from '../../schemas/recipe';
import { parseRecipe, type ParseRecipeResult } from '../../schemas/recipe-text';

const EXAMPLES = path.resolve(__dirname, '../../examples');

const HEAD = `name: t
model: { layers: 1, dim: 8, heads: 2, context: 8, tokenizer: bytes }
data:
  corpus: sotu
  train: { years: [1790, 1800] }
  eval:
    recent: { corpus: sotu, years: [2000, 2001] }
    whale: { corpus: moby-dick }
stages:
`;
const PRETRAIN = 'kind: pretrain, steps: 10, batch: 2, lr: 0.001';

function ok(text: string, source = 'r.yaml') {
  const result = parseRecipe(text, source);
  if (!result.ok) assert.fail(`expected a valid recipe, got:\n${result.message}`);
  return result.recipe;
}

function failure(text: string, source = 'r.yaml'): Extract<ParseRecipeResult, { ok: false }> {
  const result = parseRecipe(text, source);
  assert.equal(result.ok, false, 'expected the recipe to be rejected');
  return result as Extract<ParseRecipeResult, { ok: false }>;
}

/** The single issue at `path`; fails listing all issues when there is none. */
function issueAt(result: Extract<ParseRecipeResult, { ok: false }>, path: string) {
  const found = result.issues.filter((i) => i.path === path);
  assert.equal(found.length, 1, `expected one issue at ${path}, got:\n${result.message}`);
  return found[0];
}

describe('examples', () => {
  for (const file of ['quickstart.yaml', 'llama-small.yaml']) {
    it(`${file} validates, with every default filled in`, () => {
      const recipe = ok(readFileSync(path.join(EXAMPLES, file), 'utf8'), file);
      for (const stage of recipe.stages) {
        if (stage.kind === 'pretrain') {
          for (const key of ['minLr', 'warmup', 'weightDecay', 'beta1', 'beta2', 'eps', 'gradClip', 'accum', 'checkpointEvery', 'evalEvery']) {
            assert.ok(key in stage, `${stage.id}.${key} is resolved`);
          }
        } else if (stage.kind === 'evaluate') {
          assert.ok(stage.sets.length > 0 && stage.batch > 0 && stage.runtime === 'native');
        }
      }
      // The resolved recipe is a fixed point: stored and re-validated, it is unchanged.
      assert.deepEqual(Recipe.parse(JSON.parse(JSON.stringify(recipe))), recipe);
    });
  }

  it('quickstart resolves the documented defaults', () => {
    const recipe = ok(readFileSync(path.join(EXAMPLES, 'quickstart.yaml'), 'utf8'));
    assert.equal(recipe.model.mlpRatio, 4);
    const [dense, report] = recipe.stages;
    assert.equal(dense.kind, 'pretrain');
    if (dense.kind !== 'pretrain') return;
    assert.equal(dense.minLr, dense.lr / 10);
    assert.equal(dense.warmup, 80); // min(100, floor(800 / 10))
    assert.equal(dense.gradClip, 1);
    assert.equal(dense.evalEvery, null);
    assert.equal(report.kind, 'evaluate');
    if (report.kind !== 'evaluate') return;
    assert.deepEqual(report.sets, ['sotu-recent', 'moby-dick']);
  });

  it('a JSON recipe parses like its YAML twin', () => {
    const yaml = readFileSync(path.join(EXAMPLES, 'llama-small.yaml'), 'utf8');
    const fromYaml = ok(yaml, 'llama-small.yaml');
    assert.deepEqual(ok(JSON.stringify(fromYaml, null, 2), 'llama-small.json'), fromYaml);
    // By content when the name says nothing.
    assert.deepEqual(ok(JSON.stringify(fromYaml), 'stdin'), fromYaml);
  });
});

describe('per-field errors', () => {
  it('an unknown key is reported at its own path, naming the stage kind', () => {
    const r = failure(HEAD + `  - { id: a, ${PRETRAIN}, method: sste }\n`);
    assert.match(issueAt(r, 'stages[0].method').message, /unknown key `method` in a pretrain stage/);
    assert.match(r.message, /→ at stages\[0\]\.method \(r\.yaml:10:/);
  });

  it('an unknown top-level key and the key it probably meant', () => {
    const r = failure(HEAD.replace('model:', 'modle:') + `  - { id: a, ${PRETRAIN} }\n`);
    assert.match(issueAt(r, 'modle').message, /unknown key `modle` in the recipe/);
    assert.equal(issueAt(r, 'model').message, 'missing required key `model`');
  });

  it('wrong types name the key and what it should be', () => {
    const r = failure(HEAD + `  - { id: a, kind: pretrain, steps: many, batch: 2.5, lr: -1 }\n`);
    assert.equal(issueAt(r, 'stages[0].steps').message, 'expected `steps`: a whole number');
    assert.equal(issueAt(r, 'stages[0].batch').message, 'expected `batch` (windows per optimizer step): a whole number');
    assert.equal(issueAt(r, 'stages[0].lr').message, '`lr` must be positive');
  });

  it('a missing required key is called missing', () => {
    const r = failure(HEAD + `  - { id: a, kind: pretrain, batch: 2, lr: 0.1 }\n`);
    assert.equal(issueAt(r, 'stages[0].steps').message, 'missing required key `steps`');
  });

  it('an unknown stage kind lists the kinds that exist', () => {
    const r = failure(HEAD + `  - { id: a, ${PRETRAIN} }\n  - id: m\n    kind: distill\n    from: a\n`);
    const issue = issueAt(r, 'stages[1].kind');
    assert.equal(issue.message, 'unknown stage kind "distill": the kinds that exist are import, pretrain, prune, sparse-train, quantize, evaluate, export');
    assert.deepEqual([issue.line, issue.column], [12, 5]);
  });

  it('quantize: bits, a group that does not divide the rows, and ReQuant budgets are refused at their keys', () => {
    const quantize = (keys: string) => failure(HEAD + `  - { id: a, ${PRETRAIN} }\n  - { id: q, kind: quantize, from: a, ${keys} }\n`);
    assert.equal(issueAt(quantize('bits: 5'), 'stages[1].bits').message, '`bits` must be 2, 3, 4 or 8');
    assert.match(issueAt(quantize('bits: 4, group: 16, scope: attn'), 'stages[1].group').message, /`group` \(16\) must divide every in-scope layer input width, and 8 is not a multiple of it/);
    assert.ok(issueAt(quantize('bits: 4, group: 8, requant: { outliers: 1 }'), 'stages[1].requant.outliers'));
    assert.ok(issueAt(quantize('bits: 4, group: 8, requant: { significant: -0.1 }'), 'stages[1].requant.significant'));
    assert.match(issueAt(quantize('bits: 4, group: 8, gptq: { damp: 0.1 }'), 'stages[1].gptq').message, /need `method: gptq`/);
  });

  it('a stage without a kind, and a stage that is not a mapping', () => {
    const r = failure(HEAD + `  - { id: a }\n  - 3\n`);
    assert.equal(issueAt(r, 'stages[0].kind').message, 'a stage needs `kind`: one of import, pretrain, prune, sparse-train, quantize, evaluate, export');
    assert.match(issueAt(r, 'stages[1]').message, /expected a stage/);
  });

  it('pretrain cross-field constraints', () => {
    const r = failure(HEAD + `  - { id: a, ${PRETRAIN}, accum: 3, minLr: 0.01, warmup: 11 }\n`);
    assert.match(issueAt(r, 'stages[0].accum').message, /must divide `batch`/);
    assert.match(issueAt(r, 'stages[0].minLr').message, /must not exceed `lr`/);
    assert.match(issueAt(r, 'stages[0].warmup').message, /must not exceed `steps`/);
  });

  it('evaluate runs on native, onnxruntime or both; its sample is a prompt and a token count', () => {
    const r = failure(HEAD + `  - { id: a, ${PRETRAIN} }\n  - { id: e, kind: evaluate, from: a, runtime: tensorrt, sample: { prompt: "", tokens: 2000 } }\n`);
    assert.equal(issueAt(r, 'stages[1].runtime').message, 'expected `runtime`: native, onnxruntime or both');
    assert.equal(issueAt(r, 'stages[1].sample.prompt').message, '`sample.prompt` must not be empty');
    assert.equal(issueAt(r, 'stages[1].sample.tokens').message, '`sample.tokens` must be at most 1024');
  });

  it('an import stage needs model.import; an export stage takes a model and a format', () => {
    const format = failure(HEAD + `  - { id: a, ${PRETRAIN} }\n  - { id: x, kind: export, from: a, format: gguf }\n`);
    assert.equal(issueAt(format, 'stages[1].format').message, 'expected `format`: onnx or safetensors');
    const r = failure(HEAD + `  - { id: i, kind: import }\n  - { id: a, ${PRETRAIN} }\n  - { id: x, kind: export, from: a }\n  - { id: y, kind: export, from: x }\n`);
    assert.match(issueAt(r, 'stages[0].kind').message, /reads the checkpoint named by `model.import`, which this recipe does not set/);
    assert.match(issueAt(r, 'stages[3].from').message, /"x" is an export stage \(it produces an export, not a model\)/);
  });

  it('recipe-level fields', () => {
    const r = failure(HEAD.replace('name: t', 'name: My Run\nseed: -1\ndevice: tpu') + `  - { id: a, ${PRETRAIN} }\n`);
    assert.match(issueAt(r, 'name').message, /slug/);
    assert.match(issueAt(r, 'seed').message, /\[0, 2\^32 − 1\]/);
    assert.equal(issueAt(r, 'device').message, '`device` must be "cpu" or "cuda"');
  });

  it('at least one stage', () => {
    assert.equal(issueAt(failure(HEAD.replace('stages:\n', 'stages: []\n')), 'stages').message, 'a recipe needs at least one stage');
  });

  it('an empty file', () => {
    const r = failure('');
    assert.equal(r.issues[0].message, 'a recipe is a mapping with keys name, seed, device, model, data and stages');
  });
});

describe('graph errors', () => {
  it('duplicate ids', () => {
    const r = failure(HEAD + `  - { id: a, ${PRETRAIN} }\n  - { id: a, ${PRETRAIN} }\n`);
    assert.equal(issueAt(r, 'stages[1].id').message, 'duplicate stage id "a" (also stages[0])');
  });

  it('a dangling from, single and in a list', () => {
    const r = failure(HEAD + `  - { id: a, ${PRETRAIN}, from: nope }\n  - { id: e, kind: evaluate, from: [a, gone] }\n`);
    assert.match(issueAt(r, 'stages[0].from').message, /`from` names "nope", but no stage has that id \(ids: a, e\)/);
    assert.match(issueAt(r, 'stages[1].from[1]').message, /"gone"/);
  });

  it('a cycle is reported once, with its path', () => {
    const r = failure(
      HEAD +
        `  - { id: a, ${PRETRAIN}, from: c }\n  - { id: b, ${PRETRAIN}, from: a }\n  - { id: c, ${PRETRAIN}, from: b }\n`,
    );
    assert.equal(r.issues.length, 1, r.message);
    assert.equal(
      issueAt(r, 'stages[0].from').message,
      'stages form a cycle through `from` (each takes its input from the next): a → c → b → a',
    );
  });

  it('a stage naming itself', () => {
    const r = failure(HEAD + `  - { id: a, ${PRETRAIN}, from: a }\n`);
    assert.equal(issueAt(r, 'stages[0].from').message, 'stage "a" names itself in `from`');
  });

  it('a stage consuming the wrong kind of input', () => {
    const r = failure(
      HEAD +
        `  - { id: a, ${PRETRAIN} }\n  - { id: e, kind: evaluate, from: a }\n` +
        `  - { id: b, ${PRETRAIN}, from: e }\n  - { id: f, kind: evaluate, from: [a, e] }\n`,
    );
    assert.equal(
      issueAt(r, 'stages[2].from').message,
      'a pretrain stage takes its input from an import or pretrain stage, but "e" is an evaluate stage (it produces a report, not a model)',
    );
    assert.equal(
      issueAt(r, 'stages[3].from[1]').message,
      'an evaluate stage takes its input from a stage that produces a model (import, pretrain, prune, sparse-train or quantize), but "e" is an evaluate stage (it produces a report, not a model)',
    );
  });

  it('evaluation sets must exist and be listed once', () => {
    const r = failure(HEAD + `  - { id: a, ${PRETRAIN} }\n  - { id: e, kind: evaluate, from: a, sets: [recent, old, recent] }\n`);
    assert.equal(issueAt(r, 'stages[1].sets[1]').message, 'unknown evaluation set "old": `data.eval` defines recent, whale');
    assert.match(issueAt(r, 'stages[1].sets[2]').message, /listed twice/);
  });
});

describe('syntax errors', () => {
  it('YAML: line and column of the fault', () => {
    const r = failure(HEAD + `  - { id: a, ${PRETRAIN}\n`);
    assert.equal(r.issues[0].path, '');
    assert.match(r.issues[0].message, /^YAML syntax error: /);
    assert.equal(r.issues[0].line, 11);
    assert.match(r.message, /→ at r\.yaml:11:\d+/);
  });

  it('YAML: a duplicate key', () => {
    const r = failure('name: a\nname: b\n');
    assert.equal(r.issues[0].message, 'YAML syntax error: Map keys must be unique');
    assert.deepEqual([r.issues[0].line, r.issues[0].column], [2, 1]);
  });

  it('JSON: a duplicate key is refused, not resolved silently', () => {
    const r = failure('{\n  "name": "a",\n  "name": "b"\n}\n', 'r.json');
    assert.equal(r.issues[0].message, 'JSON syntax error: Map keys must be unique');
    assert.deepEqual([r.issues[0].line, r.issues[0].column], [3, 3]);
  });

  it('JSON: line and column of the fault', () => {
    const r = failure('{\n  "name": "x",\n}\n', 'r.json');
    assert.match(r.issues[0].message, /^JSON syntax error: /);
    assert.equal(r.issues[0].line, 3);
    assert.match(r.message, /→ at r\.json:3:1/);
  });
});

describe('graph helpers', () => {
  const recipe = ok(
    HEAD +
      `  - { id: report, kind: evaluate, from: [late, early] }\n` +
      `  - { id: late, ${PRETRAIN}, from: early }\n` +
      `  - { id: early, ${PRETRAIN} }\n` +
      `  - { id: side, ${PRETRAIN} }\n`,
  );

  it('topologicalOrder puts inputs first and breaks ties by declaration order', () => {
    assert.deepEqual(
      topologicalOrder(recipe).map((s) => s.id),
      ['early', 'late', 'report', 'side'],
    );
  });

  it('stageCacheConfig ignores the stage id and from, and keeps what changes the output', () => {
    const [, late, early] = recipe.stages;
    const a = stageCacheConfig(recipe, early);
    const b = stageCacheConfig(recipe, late);
    assert.deepEqual(a, b, 'same kind and settings, different id and from: same config');
    assert.equal('id' in (a.stage as object) || 'from' in (a.stage as object), false);
    const reseeded = stageCacheConfig({ ...recipe, seed: 1 }, early);
    assert.notDeepEqual(reseeded, a);
    const report = recipe.stages[0];
    assert.deepEqual(stageCacheConfig({ ...recipe, seed: 1 }, report), stageCacheConfig(recipe, report), 'evaluation ignores the seed');
  });
});

describe('2:4 stages', () => {
  const SPARSE = 'kind: sparse-train, from: a, steps: 10, batch: 2, lr: 0.001';

  it('each method takes its own keys; one given to the wrong method is refused with its path', () => {
    const r = failure(
      HEAD +
        `  - { id: a, ${PRETRAIN} }\n` +
        `  - { id: s, ${SPARSE}, method: sste, lambda: 1e-4 }\n` +
        `  - { id: t, ${SPARSE}, method: sste, slorbK: 16 }\n` +
        `  - { id: u, ${SPARSE}, method: cast, mvue: true }\n`,
    );
    assert.equal(issueAt(r, 'stages[1].lambda').message, 'unknown key `lambda` in a sparse-train stage with method sste');
    assert.equal(issueAt(r, 'stages[2].slorbK').message, 'unknown key `slorbK` in a sparse-train stage with method sste');
    assert.equal(issueAt(r, 'stages[3].mvue').message, 'unknown key `mvue` in a sparse-train stage with method cast');
  });

  it('an unknown or missing method lists the methods', () => {
    const r = failure(HEAD + `  - { id: a, ${PRETRAIN} }\n  - { id: s, ${SPARSE}, method: rigl }\n  - { id: t, ${SPARSE} }\n`);
    assert.equal(issueAt(r, 'stages[1].method').message, 'unknown sparse-train method "rigl": the methods are ste, srste, sste, ast, cast');
    assert.equal(issueAt(r, 'stages[2].method').message, 'a sparse-train stage needs `method`: one of ste, srste, sste, ast, cast');
  });

  it('bad hyperparameters are refused with clear messages', () => {
    const r = failure(
      HEAD +
        `  - { id: a, ${PRETRAIN} }\n` +
        `  - { id: s, ${SPARSE}, method: srste, denseTail: 1.5, maskEvery: 0 }\n` +
        `  - { id: t, ${SPARSE}, method: ast, rampSteps: 11, kdTau: 0 }\n` +
        `  - { id: v, kind: sparse-train, method: cast, steps: 10, batch: 2, lr: 0.001 }\n` +
        `  - { id: w, kind: prune, from: a, method: random }\n`,
    );
    assert.match(issueAt(r, 'stages[1].denseTail').message, /`denseTail` must be in \[0, 1\)/);
    assert.match(issueAt(r, 'stages[1].maskEvery').message, /`maskEvery` must be at least 1/);
    assert.match(issueAt(r, 'stages[2].rampSteps').message, /`rampSteps` \(11\) must not exceed `steps` \(10\)/);
    assert.match(issueAt(r, 'stages[2].kdTau').message, /`kdTau` must be positive/);
    assert.match(issueAt(r, 'stages[3].from').message, /missing|required/i);
    assert.match(issueAt(r, 'stages[4].method').message, /magnitude or transposable/);
    // Checks against the rest of the recipe run once every stage parsed on its own.
    const widths = failure(HEAD + `  - { id: a, ${PRETRAIN} }\n  - { id: u, ${SPARSE}, method: ast, slorbK: 3 }\n`);
    assert.match(issueAt(widths, 'stages[1].slorbK').message, /`slorbK` \(3\) must divide the input width 8 of every sparse layer/);
  });

  it('defaults follow the papers and depend on the method', () => {
    const recipe = ok(HEAD + `  - { id: a, ${PRETRAIN} }\n  - { id: s, ${SPARSE}, method: srste }\n  - { id: t, ${SPARSE}, method: ast }\n  - { id: p, kind: prune, from: a }\n`);
    const [, srste, ast, prune] = recipe.stages as any[];
    assert.deepEqual([srste.scope, srste.maskEvery, srste.lambda, srste.transposable, srste.denseTail], ['ffn', 40, 6e-5, false, 0]);
    assert.deepEqual([ast.scope, ast.maskEvery, ast.lambda, ast.rampSteps, ast.kdAlpha, ast.kdTau, ast.slorbK], ['all', 10, 1e-4, 2, 0.67, 2, null]);
    assert.deepEqual([prune.method, prune.scope], ['magnitude', 'ffn']);
  });
});
