// The stage registry: every stage kind sieve runs, and the union of their schemas that a recipe's
// `stages` list is parsed with. A kind exists here only when the engine runs it; a recipe naming
// any other kind fails with the list of kinds that do exist.
//
// Adding a kind: schemas/stages/<kind>.ts (its definition), activities/stages/<kind>.ts (its
// activity), one entry in DEFINITIONS below, one in activities/stages/index.ts, and its section
// in docs/recipe.md (docs/architecture.md, "Adding a stage kind").
//
// Sandbox-pure (zod and plain data): the workflow imports it.
import { z } from 'zod';
import { formatBytes, totalBytes } from '../memory';
import type { RecipeContext, StageDefinition } from './define';
import { evaluate } from './evaluate';
import { exportStage } from './export';
import { importStage } from './import';
import { pretrain } from './pretrain';
import { quantize } from './quantize';
import { prune } from './prune';
import { sparseTrain } from './sparse-train';

export { StageId, type DataReads, type RecipeContext, type StageProduct } from './define';

/** Every kind, in the order the docs and the JSON Schema list them. */
const DEFINITIONS = [importStage, pretrain, prune, sparseTrain, quantize, evaluate, exportStage] as const;

type Definitions = (typeof DEFINITIONS)[number];
export type StageKind = Definitions['kind'];

/** The definitions by kind; the keys are the kinds themselves, by construction. */
export const STAGES = Object.fromEntries(DEFINITIONS.map((d) => [d.kind, d])) as { [D in Definitions as D['kind']]: D };
export const STAGE_KINDS = DEFINITIONS.map((d) => d.kind) as readonly StageKind[];
export const StageKind = z.enum(STAGE_KINDS as [StageKind, ...StageKind[]]);

// A mapped type over a type parameter keeps the tuple's shape, which discriminatedUnion needs.
type SchemasOf<T extends readonly unknown[]> = { [I in keyof T]: T[I] extends { schema: infer S } ? S : never };

export const Stage = z.discriminatedUnion('kind', DEFINITIONS.map((d) => d.schema) as unknown as SchemasOf<typeof DEFINITIONS>, {
  error: (issue) => {
    // A non-object stage is reported by the union itself, although the issue type does not list that code.
    if ((issue.code as string) === 'invalid_type') return "expected a stage: a mapping with `id`, `kind` and that kind's keys";
    if (issue.code !== 'invalid_union') return undefined;
    const kind = (issue.input as { kind?: unknown } | undefined)?.kind;
    const known = STAGE_KINDS.join(', ');
    return kind === undefined
      ? `a stage needs \`kind\`: one of ${known}`
      : `unknown stage kind ${JSON.stringify(kind)}: the kinds that exist are ${known}`;
  },
});
/** A stage as it parses on its own. */
export type Stage = z.infer<typeof Stage>;

type ResolvedOf<D> = D extends { resolve(...args: never[]): infer R } ? R : never;
/** A stage as a parsed Recipe holds it: recipe-level defaults filled in (an evaluate stage's `sets`). */
export type ResolvedStage = ResolvedOf<Definitions>;

/** Any kind's definition, for code that dispatches on `stage.kind`. */
export type AnyStageDefinition = StageDefinition<StageKind, z.ZodType<Stage>, ResolvedStage>;

export function definitionOf(kind: StageKind): AnyStageDefinition {
  return STAGES[kind] as AnyStageDefinition;
}

/** The kinds a stage of `kind` may name in `from`. */
export function acceptedInputs(kind: StageKind): StageKind[] {
  const { accepts } = definitionOf(kind);
  if ('produces' in accepts) return STAGE_KINDS.filter((k) => definitionOf(k).produces === accepts.produces);
  return STAGE_KINDS.filter((k) => accepts.includes(k));
}

/** The ids a stage consumes, in `from` order (empty when it names none). */
export function stageInputs(stage: Stage): string[] {
  const { from } = stage as { from?: string | readonly string[] };
  return from === undefined ? [] : typeof from === 'string' ? [from] : [...from];
}

/**
 * Why a machine with `memoryBytes` of memory cannot run the stage with `threads` engine threads,
 * in one sentence with the numbers, or null when its estimate fits.
 */
export function memoryShortfall(stage: ResolvedStage, recipe: RecipeContext, machine: { threads: number; memoryBytes: number }): string | null {
  const estimate = definitionOf(stage.kind).memory(stage, recipe, machine.threads);
  const total = totalBytes(estimate);
  if (total <= machine.memoryBytes) return null;
  const parts = estimate.map((p) => `${p.what} ${formatBytes(p.bytes)}`).join(', ');
  return `stage ${stage.id} needs about ${formatBytes(total)} of memory (${parts}), but this machine has ${formatBytes(machine.memoryBytes)}`;
}

/** Resolves a parsed stage against its recipe (the defaults that depend on the rest of it). */
export function resolveStage(stage: Stage, recipe: RecipeContext): ResolvedStage {
  return definitionOf(stage.kind).resolve(stage, recipe);
}
