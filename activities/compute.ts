// Shared by the compute stages (the activities on the `cpu` / `gpu` queues): their dependencies,
// how they find their stage and input models, and how bad input becomes a non-retryable failure.

import { ApplicationFailure } from '@temporalio/common';
import type { RecipeStage } from '../schemas/recipe';
import type { StageOutput, StageTask } from '../schemas/pipeline';
import type { ArtifactStore } from './store/artifacts';

export interface ComputeDeps {
  store: ArtifactStore;
  /** Engine threads; null = every core. Results do not depend on it (see docs/kernels.md). */
  threads: number | null;
}

export type StageEvents = StageOutput['events'];

/** Input the stage will reject on every attempt: fail the stage at once instead of retrying. */
export function badInput(err: unknown): ApplicationFailure {
  const message = err instanceof Error ? err.message : String(err);
  return ApplicationFailure.create({ message, type: 'BadInput', nonRetryable: true, cause: err instanceof Error ? err : undefined });
}

export function findStage<K extends RecipeStage['kind']>(task: StageTask, kind: K): Extract<RecipeStage, { kind: K }> {
  const stage = task.recipe.stages.find((s) => s.id === task.stageId);
  if (!stage || stage.kind !== kind) throw badInput(new Error(`stage ${task.stageId} is not a ${kind} stage of recipe ${task.recipe.name}`));
  return stage as Extract<RecipeStage, { kind: K }>;
}

/** Absolute path of the model checkpoint produced by input stage `from`, verified by its hash. */
export async function inputModel(deps: ComputeDeps, task: StageTask, from: string): Promise<string> {
  const model = task.inputs[from]?.artifacts.find((a) => a.role === 'model');
  if (!model) throw badInput(new Error(`stage ${task.stageId}: input stage ${from} produced no model`));
  return (await deps.store.verify(model.sha256)).path;
}
