// The contract between the pipeline workflow, its activities and the CLI: task-queue names,
// activity ids, the signal and the query, the workflow's input and result, and the names of the
// failures that must not be retried. Activities and the CLI import this module, never the
// workflow file, so nothing outside the workflow depends on how it is written.
//
// Sandbox-pure (zod types and the Temporal workflow API's definitions only).
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { CheckpointRef, ResumePlan, RunOptions, StageProgress, SweepPoint } from '../schemas/pipeline';
import type { Recipe } from '../schemas/recipe';

/** `sieve`: the workflow and the control activities (SQLite lives with it); `cpu` / `gpu`: the stages. */
export const TASK_QUEUES = { control: 'sieve', cpu: 'cpu', gpu: 'gpu' } as const;
export type TaskQueue = (typeof TASK_QUEUES)[keyof typeof TASK_QUEUES];

/** The queue a recipe's compute stages run on. */
export function computeQueue(device: Recipe['device']): TaskQueue {
  return device === 'cuda' ? TASK_QUEUES.gpu : TASK_QUEUES.cpu;
}

/** A stage's compute activity carries the stage id, so live progress can be read per stage. */
export const stageActivityId = (stageId: string) => `stage:${stageId}`;

/** Every stage's status, checkpoint and error, as the workflow knows them. */
export const progressQuery = defineQuery<StageProgress[]>('progress');

/** Sent by a compute activity for each checkpoint it stores, so SQLite records it even if the stage never ends. */
export const checkpointSaved = defineSignal<[CheckpointRef]>('checkpointSaved');

/**
 * Failure types that would fail the same way on every attempt: bad input (a recipe the engine
 * refuses, missing data), a missing or corrupt artifact, a machine out of memory or disk, storage
 * that cannot be written, and a database that vanished or cannot be used (the error classes' names).
 */
export const ERROR_TYPES = {
  badInput: 'BadInput',
  artifactMissing: 'ArtifactMissingError',
  artifactCorrupt: 'ArtifactCorruptError',
  resourceExhausted: 'ResourceExhausted',
  storageUnwritable: 'StorageUnwritable',
  databaseLost: 'DatabaseLostError',
  databaseUnusable: 'DatabaseUnusableError',
  /** A training stage's loss or gradient norm became NaN or infinite (activities/train/loop.ts): the same bits diverge again. */
  diverged: 'Diverged',
} as const;
export const NON_RETRYABLE: string[] = Object.values(ERROR_TYPES);

export interface PipelineInput {
  runId: string;
  recipe: Recipe;
  options: RunOptions;
  resume: ResumePlan | null;
}

export interface PipelineResult {
  status: 'completed' | 'failed';
  stages: StageProgress[];
}

/**
 * A sweep (workflows/sweep.ts; workflow id = the sweep id): the run of the stages every point
 * shares, if any, first; then one pipeline per point, at most `concurrency` at a time. A point
 * carries its own resume plan when the sweep continues an earlier one (`sieve resume <sweep>`).
 */
export interface SweepInput {
  sweepId: string;
  /** `resume`: when the sweep continues an earlier one, the earlier shared run's plan. */
  shared: { runId: string; recipe: Recipe; resume?: ResumePlan | null } | null;
  points: { runId: string; recipe: Recipe; point: SweepPoint; resume: ResumePlan | null }[];
  options: RunOptions;
  concurrency: number;
}

export type SweepRunStatus = 'pending' | 'running' | 'completed' | 'failed' | 'cancelled';

export interface SweepResult {
  status: 'completed' | 'failed';
  shared: { runId: string; status: SweepRunStatus } | null;
  points: { runId: string; status: SweepRunStatus }[];
}

/** The sweep's runs and their statuses, as the sweep workflow knows them. */
export const sweepProgressQuery = defineQuery<SweepResult>('sweepProgress');
