// The vocabulary of sieve's records, defined once: run and stage statuses, artifact kinds, and
// the machine description stored with runs and stages. The SQLite tables (./tables.ts), the
// workflow's messages (./pipeline.ts) and the CLI's outputs (./cli.ts) all use these.
//
// Sandbox-pure (zod only): the workflow reports stage statuses in its progress query.
import { z } from 'zod';

export const RUN_STATUSES = ['pending', 'running', 'completed', 'failed', 'cancelled'] as const;
export const RunStatus = z.enum(RUN_STATUSES);
export type RunStatus = z.infer<typeof RunStatus>;

/** Run statuses after which nothing about the run changes. */
export const TERMINAL_RUN_STATUSES = ['completed', 'failed', 'cancelled'] as const satisfies readonly RunStatus[];

/** `cached`: served from the stage cache; `reused`: taken from the parent run by `sieve resume`; `skipped`: an input failed. */
export const STAGE_STATUSES = ['pending', 'running', 'completed', 'cached', 'reused', 'failed', 'skipped', 'cancelled'] as const;
export const StageStatus = z.enum(STAGE_STATUSES);
export type StageStatus = z.infer<typeof StageStatus>;

/** Stage statuses after which the stage's outputs are final and usable by its consumers. */
export const FINISHED_STAGE_STATUSES = ['completed', 'cached', 'reused'] as const satisfies readonly StageStatus[];

/** Stage statuses after which the stage does no more work in its run. */
export const TERMINAL_STAGE_STATUSES = [...FINISHED_STAGE_STATUSES, 'failed', 'skipped', 'cancelled'] as const satisfies readonly StageStatus[];

/** What an artifact file holds (its format is fixed per kind, see docs/checkpoint-format.md). */
export const ARTIFACT_KINDS = ['checkpoint', 'model', 'eval-report', 'metrics', 'onnx', 'hf-weights', 'hf-config', 'tokenizer', 'sensitivity'] as const;
export const ArtifactKind = z.enum(ARTIFACT_KINDS);
export type ArtifactKind = z.infer<typeof ArtifactKind>;

/** The machine a run or stage ran on: enough to explain a difference in results or speed. */
export const Environment = z.strictObject({
  hostname: z.string(),
  node: z.string(),
  platform: z.string(),
  arch: z.string(),
  /** Kernel release (`os.release()`). */
  release: z.string(),
  cpu: z.strictObject({ model: z.string(), cores: z.int().nonnegative() }),
  memoryBytes: z.number().nonnegative(),
  /** BLAS library and version as the native engine reports it; null when not known to the caller. */
  blas: z.string().nullable(),
  /** GPU model, driver and CUDA version; null on CPU-only hosts or when not known to the caller. */
  gpu: z.string().nullable(),
  /** sha256 of package-lock.json: the exact dependency versions. */
  lockfile: z.string().nullable(),
  /** Environment variables that change threading, devices or sieve itself (OMP_NUM_THREADS, CUDA_VISIBLE_DEVICES, SIEVE_*, …). */
  env: z.record(z.string(), z.string()),
});
export type Environment = z.infer<typeof Environment>;
