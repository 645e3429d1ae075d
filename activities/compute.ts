// Shared by the compute stages (the activities on the `cpu` / `gpu` queues): their dependencies,
// the signature every stage kind implements, how they find their input models, and how bad input
// becomes a non-retryable failure.

import { ApplicationFailure } from '@temporalio/common';
import type { DataSection } from '../schemas/data';
import type { StageOutput, StageTask } from '../schemas/pipeline';
import type { Recipe, RecipeStage } from '../schemas/recipe';
import { definitionOf, type StageKind } from '../schemas/stages';
import { ERROR_TYPES } from '../workflows/contract';
import type { StageContext } from './stage-context';
import type { ArtifactStore } from './store/artifacts';

export interface ComputeDeps {
  store: ArtifactStore;
  /** Engine threads; null = every core. Results do not depend on it (see docs/kernels.md). */
  threads: number | null;
}

export type StageEvents = StageOutput['events'];

/** A stage of kind K as the parsed recipe holds it. */
export type StageOf<K extends StageKind> = Extract<RecipeStage, { kind: K }>;

/**
 * The computation of one stage kind (activities/stages/<kind>.ts): from its resolved stage, its
 * task (recipe, inputs, resume point) and what it sees of Temporal, to the outputs it hands on.
 */
export type StageRun<K extends StageKind> = (deps: ComputeDeps, ctx: StageContext, task: StageTask, stage: StageOf<K>) => Promise<StageOutput>;

/** Input the stage will reject on every attempt: fail the stage at once instead of retrying. */
export function badInput(err: unknown): ApplicationFailure {
  const message = err instanceof Error ? err.message : String(err);
  return ApplicationFailure.create({ message, type: ERROR_TYPES.badInput, nonRetryable: true, cause: err instanceof Error ? err : undefined });
}

/** A training stage whose loss or gradient norm turned non-finite (activities/train/loop.ts): the same bits diverge again, so it is not retried. */
export function diverged(err: Error): ApplicationFailure {
  return ApplicationFailure.create({ message: err.message, type: ERROR_TYPES.diverged, nonRetryable: true, cause: err });
}

/** The stage the task names, which must be of `kind` (the activity of that kind was called). */
export function findStage<K extends StageKind>(task: StageTask, kind: K): StageOf<K> {
  const stage = task.recipe.stages.find((s) => s.id === task.stageId);
  if (!stage || stage.kind !== kind) throw badInput(new Error(`stage ${task.stageId} is not a ${kind} stage of recipe ${task.recipe.name}`));
  return stage as StageOf<K>;
}

/** The recipe's data section narrowed to the evaluation sets the stage's definition says it reads. */
export function dataReadBy(stage: RecipeStage, recipe: Recipe): DataSection {
  const { eval: names } = definitionOf(stage.kind).reads(stage, recipe);
  return { ...recipe.data, eval: Object.fromEntries(names.map((name) => [name, recipe.data.eval[name]])) };
}

/** Absolute path of the model checkpoint produced by input stage `from`, verified by its hash. */
export async function inputModel(deps: ComputeDeps, task: StageTask, from: string): Promise<string> {
  const model = task.inputs[from]?.artifacts.find((a) => a.role === 'model');
  if (!model) throw badInput(new Error(`stage ${task.stageId}: input stage ${from} produced no model`));
  return (await deps.store.verify(model.sha256)).path;
}
