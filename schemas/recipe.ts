// The recipe: a model, its data and a DAG of stages, plus the parsing that turns a YAML
// or JSON file into a validated, fully resolved Recipe or a list of path-named issues.
//
// Sandbox-pure (zod and ./ only: no fs, no crypto, no yaml, which needs node:process)
// because Temporal workflows import it; reading recipe text is ./recipe-text.ts. `Recipe` checks
// each field, then the graph: unique ids, `from` naming an existing stage of a kind it can
// consume, no cycles, and each kind's own checks against the rest of the recipe (its definition
// in ./stages). Its output is explicit (every default filled in), and parsing that output again
// gives the same value, so a recipe stored in the database or a workflow history re-validates.
import { z } from 'zod';
import { DataSection, trainSource } from './data';
import { aStage, Seed, stageSeed, wrongType } from './fields';
import { Model } from './model';
import { acceptedInputs, definitionOf, resolveStage, Stage, stageInputs, type ResolvedStage, type StageKind } from './stages';

// The stage vocabulary, re-exported so that a workflow needs one import for the recipe and its stages.
export { Stage, StageKind, STAGE_KINDS, stageInputs } from './stages';

export const RecipeName = z
  .string({ error: wrongType('expected `name`: a string') })
  .regex(
    /^[a-z0-9][a-z0-9._-]{0,63}$/,
    '`name` must be a slug: 1–64 lowercase letters, digits, ".", "_" or "-", starting with a letter or digit',
  );

export const Device = z.enum(['cpu', 'cuda'], { error: wrongType('`device` must be "cpu" or "cuda"') });
export type Device = z.infer<typeof Device>;

export { Seed } from './fields';

const RecipeFields = z.strictObject(
  {
    name: RecipeName.describe('the experiment name, used to group runs in `sieve history`'),
    seed: Seed.default(0)
      .describe('seeds weight init and batch sampling; same seed, same bits on CPU'),
    device: Device.default('cpu').describe('where compute stages run: the cpu or gpu task queue'),
    model: Model,
    data: DataSection,
    stages: z
      .array(Stage, { error: wrongType('expected `stages`: a list of stages') })
      .min(1, 'a recipe needs at least one stage')
      .describe('the stage DAG, linked through `from`; listed in any order'),
  },
  {
    error: (issue) => {
      if (issue.code === 'invalid_type') return 'a recipe is a mapping with keys name, seed, device, model, data and stages';
      if (issue.code === 'unrecognized_keys') {
        return `unknown key ${issue.keys.map((k) => `\`${k}\``).join(', ')} in the recipe; its keys are name, seed, device, model, data, stages`;
      }
      return undefined;
    },
  },
);

export const Recipe = RecipeFields.superRefine(checkGraph)
  .transform((recipe) => ({
    ...recipe,
    stages: recipe.stages.map((stage): ResolvedStage => resolveStage(stage, recipe)),
  }))
  .describe('a sieve recipe: a model, its data and a DAG of stages');
export type Recipe = z.infer<typeof Recipe>;
/** A stage as it appears in a parsed Recipe (recipe-level defaults filled in, e.g. an evaluate stage's `sets`). */
export type RecipeStage = ResolvedStage;

type RecipeFields = z.infer<typeof RecipeFields>;

/** Cross-stage checks, run once every stage has parsed on its own. */
function checkGraph(recipe: RecipeFields, ctx: z.core.$RefinementCtx<RecipeFields>): void {
  const { stages } = recipe;
  const index = new Map<string, number>();
  stages.forEach((stage, i) => {
    const first = index.get(stage.id);
    if (first === undefined) index.set(stage.id, i);
    else ctx.addIssue({ code: 'custom', path: ['stages', i, 'id'], message: `duplicate stage id "${stage.id}" (also stages[${first}])` });
  });
  const known = [...index.keys()].join(', ');

  // Edges that point at another existing stage; dangling and self references are reported here and left out of the cycle search.
  const edges: Array<Array<{ target: number; path: PropertyKey[] }>> = stages.map(() => []);
  stages.forEach((stage, i) => {
    const listed = 'from' in stage && Array.isArray(stage.from);
    stageInputs(stage).forEach((input, j) => {
      const path = listed ? ['stages', i, 'from', j] : ['stages', i, 'from'];
      const target = index.get(input);
      if (target === undefined) {
        ctx.addIssue({ code: 'custom', path, message: `\`from\` names "${input}", but no stage has that id (ids: ${known})` });
        return;
      }
      if (target === i) {
        ctx.addIssue({ code: 'custom', path, message: `stage "${input}" names itself in \`from\`` });
        return;
      }
      edges[i].push({ target, path });
      const targetKind = stages[target].kind;
      if (!acceptedInputs(stage.kind).includes(targetKind)) {
        ctx.addIssue({ code: 'custom', path, message: wrongInputMessage(stage.kind, input, targetKind) });
      }
    });
  });

  for (const cycle of findCycles(edges)) {
    const names = [...cycle.map((c) => stages[c.from].id), stages[cycle[0].from].id].join(' → ');
    ctx.addIssue({
      code: 'custom',
      path: cycle[0].path,
      message: `stages form a cycle through \`from\` (each takes its input from the next): ${names}`,
    });
  }

  stages.forEach((stage, i) => {
    definitionOf(stage.kind).check(stage, recipe, (path, message) => ctx.addIssue({ code: 'custom', path: ['stages', i, ...path], message }));
  });
}

/** "a model", "an export". */
const article = (noun: string) => `${/^[aeiou]/.test(noun) ? 'an' : 'a'} ${noun}`;

function wrongInputMessage(kind: StageKind, input: string, inputKind: StageKind): string {
  const { accepts } = definitionOf(kind);
  const accepted = acceptedInputs(kind);
  const list = accepted.length > 1 ? `${accepted.slice(0, -1).join(', ')} or ${accepted.at(-1)}` : accepted[0];
  const wanted = definitionOf(accepted[0]).produces;
  const source = 'produces' in accepts ? `a stage that produces ${article(accepts.produces)} (${list})` : aStage(list);
  const product = definitionOf(inputKind).produces;
  const produces = product === wanted ? article(product) : `${article(product)}, not ${article(wanted)}`;
  return `${aStage(kind)} takes its input from ${source}, but "${input}" is ${aStage(inputKind)} (it produces ${produces})`;
}

type Edge = { target: number; path: PropertyKey[] };

/**
 * Every elementary cycle reachable by depth-first search, each once, as the list of edges
 * walked (`from` is the consuming stage). Deterministic: stages and inputs in declaration order.
 */
function findCycles(edges: Edge[][]): Array<Array<{ from: number; path: PropertyKey[] }>> {
  const state = edges.map(() => 'new' as 'new' | 'open' | 'done');
  const stack: Array<{ from: number; path: PropertyKey[] }> = [];
  const cycles: Array<Array<{ from: number; path: PropertyKey[] }>> = [];
  const visit = (node: number): void => {
    state[node] = 'open';
    for (const edge of edges[node]) {
      stack.push({ from: node, path: edge.path });
      if (state[edge.target] === 'open') {
        const start = stack.findIndex((step) => step.from === edge.target);
        cycles.push(stack.slice(start));
      } else if (state[edge.target] === 'new') {
        visit(edge.target);
      }
      stack.pop();
    }
    state[node] = 'done';
  };
  edges.forEach((_, node) => {
    if (state[node] === 'new') visit(node);
  });
  return cycles;
}

/**
 * The stages in an order where each comes after every stage it consumes; among stages
 * that are ready together, declaration order decides, so the order is deterministic.
 * Throws if the graph is not a DAG, which a parsed Recipe never is.
 */
export function topologicalOrder(recipe: Recipe): RecipeStage[] {
  const { stages } = recipe;
  const waitingOn = stages.map((stage) => new Set(stageInputs(stage)));
  const done = new Set<string>();
  const order: RecipeStage[] = [];
  while (order.length < stages.length) {
    const next = stages.findIndex((stage, i) => !done.has(stage.id) && [...waitingOn[i]].every((id) => done.has(id)));
    if (next < 0) throw new Error('topologicalOrder: the stages do not form a DAG; parse the recipe with Recipe first');
    done.add(stages[next].id);
    order.push(stages[next]);
  }
  return order;
}

/**
 * Everything in the recipe that determines a stage's output apart from its input artifacts,
 * the data's content and the code: the input to the stage cache key. The stage's `id` and
 * `from` are left out (inputs are identified by their artifact hashes), so renaming a stage or
 * moving it to another recipe still hits the cache. Only the data the stage reads and, for a
 * seeded kind, the seed are included, as its definition declares.
 */
export function stageCacheConfig(recipe: Recipe, stage: RecipeStage) {
  const { id: _id, from: _from, ...config } = stage as RecipeStage & { from?: unknown };
  const definition = definitionOf(stage.kind);
  const reads = definition.reads(stage, recipe);
  return {
    kind: stage.kind,
    stage: config,
    model: recipe.model,
    device: recipe.device,
    seed: definition.seeded ? stageSeed(stage, recipe) : undefined,
    data: {
      train: reads.train ? trainSource(recipe.data) : undefined,
      eval: Object.fromEntries(reads.eval.map((name) => [name, recipe.data.eval[name]])),
    },
  };
}

/** The recipe's JSON Schema (the input side: defaults optional), for editors and `sieve schema`. */
export function recipeJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(Recipe, { io: 'input', target: 'draft-2020-12' }),
    title: 'sieve recipe',
  };
}

/** One problem with a recipe: where (a path such as `stages[2].from`, and the line:column when known) and what. */
export const RecipeIssue = z.strictObject({
  path: z.string(),
  message: z.string(),
  line: z.int().positive().nullable(),
  column: z.int().positive().nullable(),
});
export type RecipeIssue = z.infer<typeof RecipeIssue>;
