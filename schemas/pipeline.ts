// The messages that cross the workflow ↔ activity boundary. Sandbox-pure (zod only): the pipeline
// workflow imports these. Only references and small numbers travel here — tensors and checkpoints
// stay in the artifact store and are named by sha256.

import { z } from 'zod';
import type { Recipe } from './recipe';
import { ArtifactKind, StageStatus, type Environment } from './records';

export const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'expected a sha256 hex digest');

/** A content-addressed file in SIEVE_HOME/artifacts. */
export const ArtifactRef = z.strictObject({
  sha256: Sha256,
  bytes: z.number().int().nonnegative(),
  kind: ArtifactKind,
  /** How the stage made or used it: `model` or `report` (its primary output, see StageProduct), `history`, … */
  role: z.string(),
});
export type ArtifactRef = z.infer<typeof ArtifactRef>;

/** A checkpoint file of a stage, as a place to resume from. */
export const CheckpointFile = z.strictObject({
  step: z.number().int().nonnegative(),
  sha256: Sha256,
  bytes: z.number().int().nonnegative(),
});
export type CheckpointFile = z.infer<typeof CheckpointFile>;

/** How many checkpoints of a stage a reference carries (itself and `earlier`): enough fallbacks, a bounded message. */
export const KNOWN_CHECKPOINTS = 8;

/**
 * A checkpoint written mid-stage, reported by heartbeat and by the `checkpointSaved` signal, and
 * handed to the attempt or run that resumes the stage. It carries the stage's earlier checkpoints,
 * so whoever holds the newest reference also holds the fallbacks for a newest one that is corrupt
 * or gone (docs/checkpoint-format.md, "Resuming").
 */
export const CheckpointRef = z.strictObject({
  stageId: z.string(),
  ...CheckpointFile.shape,
  /** The loss-history segment ending at this step, stored beside it; null when none is known (a checkpoint listed from records that have no segment). */
  history: z.strictObject({ sha256: Sha256, bytes: z.number().int().nonnegative() }).nullable(),
  /** Older checkpoints of the same stage, newest first. */
  earlier: z.array(CheckpointFile).max(KNOWN_CHECKPOINTS - 1),
});
export type CheckpointRef = z.infer<typeof CheckpointRef>;

/** A reference's checkpoints, newest first: itself, then its fallbacks. */
export function checkpointCandidates(ref: CheckpointRef): CheckpointFile[] {
  return [{ step: ref.step, sha256: ref.sha256, bytes: ref.bytes }, ...ref.earlier];
}

/**
 * One reference holding what two references of the same stage know: the newer (by step; `b` on a
 * tie, as the later report) leads, and every other checkpoint of either becomes a fallback, each
 * once, newest first, at most KNOWN_CHECKPOINTS in all.
 */
export function mergeCheckpoints(a: CheckpointRef | null, b: CheckpointRef): CheckpointRef {
  if (!a) return b;
  const head = b.step >= a.step ? b : a;
  const seen = new Set([head.sha256]);
  const earlier: CheckpointFile[] = [];
  for (const c of [...checkpointCandidates(b), ...checkpointCandidates(a)].sort((x, y) => y.step - x.step)) {
    if (seen.has(c.sha256)) continue;
    seen.add(c.sha256);
    earlier.push(c);
  }
  return { ...head, earlier: earlier.slice(0, KNOWN_CHECKPOINTS - 1) };
}

/** What a finished stage hands to the stages that consume it, and to the recorder. */
export const StageOutput = z.strictObject({
  artifacts: z.array(ArtifactRef),
  metrics: z.record(z.string(), z.number()),
  /** Wall time the attempt that produced this output spent in the stage's activity (not queueing). */
  computeMs: z.number().nonnegative(),
  /** Notable happenings inside the activity (resumed from step N, …), journaled by the recorder. */
  events: z.array(z.strictObject({ type: z.string(), at: z.string(), payload: z.record(z.string(), z.unknown()) })),
});
export type StageOutput = z.infer<typeof StageOutput>;

/** What a compute activity returns: the stage's output, and which attempt on which machine made it. */
export interface ComputeResult {
  output: StageOutput;
  /** Temporal's attempt number (1 = first try). */
  attempt: number;
  environment: Environment;
}

/** One point of a sweep's grid: its seed and the recipe values set at it (`stages.ft.lr` → 0.001). */
export const SweepPoint = z.strictObject({
  index: z.int().nonnegative(),
  seed: z.int(),
  set: z.record(z.string(), z.unknown()),
});
export type SweepPoint = z.infer<typeof SweepPoint>;

export const RunOptions = z.strictObject({
  noCache: z.boolean(),
  /**
   * Longest gap between heartbeats before Temporal declares a compute attempt dead and retries
   * it; null = each stage kind's own default (its definition's `activity.heartbeatSec`).
   */
  heartbeatTimeoutSec: z.number().positive().nullable(),
  maxAttempts: z.number().int().positive(),
  /** `sieve reproduce`: the run this one runs again (absent in histories from before it existed). */
  reproduces: z.string().nullable().optional(),
  /** A run of a sweep: the sweep's id, and its point of the grid (null: the run of the stages every point shares). */
  sweep: z.strictObject({ id: z.string(), point: z.lazy(() => SweepPoint).nullable() }).optional(),
});
export type RunOptions = z.infer<typeof RunOptions>;

/**
 * Carried by `sieve resume`: what the earlier run finished and where its partial stages stopped
 * (each stage's newest recorded checkpoint, its older ones as fallbacks).
 */
export const ResumePlan = z.strictObject({
  parentRunId: z.string(),
  completed: z.record(z.string(), StageOutput),
  checkpoints: z.record(z.string(), CheckpointRef),
  /**
   * Set for a sweep's point: `completed` holds the stages every point shares, computed once in run
   * `parentRunId` for sweep `sharedBy`. The point does not resume that run; it takes those outputs.
   */
  sharedBy: z.string().optional(),
});
export type ResumePlan = z.infer<typeof ResumePlan>;

export const StageProgress = z.strictObject({
  id: z.string(),
  kind: z.string(),
  status: StageStatus,
  reason: z.string().nullable(),
  checkpoint: CheckpointRef.nullable(),
  error: z.string().nullable(),
});
export type StageProgress = z.infer<typeof StageProgress>;

/** Heartbeat details of a compute activity: tiny, the newest wins. */
export const Heartbeat = z.strictObject({
  step: z.number().int().nonnegative(),
  steps: z.number().int().nonnegative(),
  loss: z.number().nullable(),
  tokensPerSec: z.number().nullable(),
  /** Seconds left at the current pace, as the stage itself measures it. */
  etaSec: z.number().nullable(),
  checkpoint: CheckpointRef.nullable(),
});
export type Heartbeat = z.infer<typeof Heartbeat>;

/** What the workflow hands a compute activity: the whole recipe (small), the stage to run, its inputs. */
export interface StageTask {
  runId: string;
  recipe: Recipe;
  stageId: string;
  /** Outputs of the stages named in `from`, by stage id. */
  inputs: Record<string, StageOutput>;
  cacheKey: string;
  /**
   * The stage's checkpoints the workflow knows when it schedules the stage: from an earlier run
   * (`sieve resume`) and reported by earlier attempts. A retry adds its last heartbeat's and the
   * workflow's newest, and resumes from the newest that is intact.
   */
  resumeFrom: CheckpointRef | null;
}
