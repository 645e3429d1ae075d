// The shape of a stage kind: everything the rest of sieve needs to know about it, in one place.
// The recipe parser, the workflow, the recorder, the stage cache, the CLI and the docs test
// read a kind's definition (through ./index.ts) instead of switching on its name.
//
// Sandbox-pure (zod and plain data only): the workflow imports the definitions. A kind's
// computation is its activity (activities/stages/<kind>.ts), registered separately because it
// needs the engine and the file system.
import { z } from 'zod';
import type { DataSection } from '../data';
import type { MemoryEstimate } from '../memory';
import { aStage, wrongType } from '../fields';
import type { Model } from '../model';

/** Stage ids become metric, event and artifact-link keys, so they stay plain slugs. */
export const StageId = z
  .string({ error: wrongType('expected a stage id: a string') })
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/,
    'a stage id is 1–64 letters, digits, "_" or "-", starting with a letter or digit',
  );
export type StageId = z.infer<typeof StageId>;

/**
 * What a stage hands to the stages that name it in `from`. The output artifact whose role has
 * this name is the stage's primary output: consumers read it and the cache key hashes it.
 */
export type StageProduct = 'model' | 'report' | 'export';

/** The parts of a recipe around its stages, as a definition may read them. */
export interface RecipeContext {
  seed: number;
  device: string;
  model: Model;
  data: DataSection;
}

/** The data a stage reads. Its content hash is part of the stage's cache key. */
export interface DataReads {
  /** The training split (`data.corpus` + `data.train`). */
  train: boolean;
  /** Names from `data.eval`, in the order the stage uses them. */
  eval: readonly string[];
}

/** Where a cross-stage check found a problem: a path inside the stage (`['sets', 1]`) and one sentence. */
export type ReportIssue = (path: PropertyKey[], message: string) => void;

/** The fields every stage kind has; `from` links it into the DAG (absent, one id, or a list). */
interface StageFields<K extends string> {
  id: string;
  kind: K;
  from?: string | readonly string[];
}

/**
 * A stage kind. `S` is its schema, `R` the stage once recipe-level defaults are filled in (the
 * shape a parsed Recipe holds). Members are methods so that a definition of one kind can be
 * used where any definition is expected (the registry dispatches on `kind`).
 */
export interface StageDefinition<K extends string, S extends z.ZodType<StageFields<K>>, R extends z.output<S>> {
  kind: K;
  /** The strict schema of the stage's keys; every default it can fill alone is filled here. */
  schema: S;
  produces: StageProduct;
  /** The kinds it may name in `from`, or every kind that produces the given product. */
  accepts: readonly string[] | { produces: StageProduct };
  /** The stage with the defaults that depend on the rest of the recipe filled in. */
  resolve(stage: z.output<S>, recipe: RecipeContext): R;
  /** Checks against the rest of the recipe, run once every stage has parsed on its own. */
  check(stage: z.output<S>, recipe: RecipeContext, report: ReportIssue): void;
  /** The data it reads. */
  reads(stage: R, recipe: RecipeContext): DataReads;
  /** Whether the recipe's seed changes its output; if so the seed is part of its cache key. */
  seeded: boolean;
  /** Units of work it reports progress in (optimizer steps), or null when it has no step count. */
  steps(stage: R): number | null;
  /** What its computation allocates at its peak with `threads` engine threads (schemas/memory.ts). */
  memory(stage: R, recipe: RecipeContext, threads: number): MemoryEstimate;
  /**
   * Its compute activity's timeouts: one attempt may run this long, and an attempt whose worker
   * sends no heartbeat for `heartbeatSec` is declared dead and retried (`--heartbeat-timeout`
   * overrides it for a run).
   */
  activity: { startToCloseSec: number; heartbeatSec: number };
}

type Optional = 'resolve' | 'check';

/** A definition with identity `resolve` and no cross-stage `check` unless given. */
export function defineStage<const K extends string, S extends z.ZodType<StageFields<K>>, R extends z.output<S> = z.output<S>>(
  definition: Omit<StageDefinition<K, S, R>, Optional> & Partial<Pick<StageDefinition<K, S, R>, Optional>>,
): StageDefinition<K, S, R> {
  return {
    resolve: (stage) => stage as R,
    check: () => {},
    ...definition,
  };
}

/** A strict object whose unknown-key message names the stage kind, so a key given to the wrong kind is obvious. */
export function stageObject<S extends z.core.$ZodLooseShape>(kind: string, shape: S) {
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown key ${issue.keys.map((k) => `\`${k}\``).join(', ')} in ${aStage(kind)}`
        : undefined,
  });
}
