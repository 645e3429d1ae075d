// The `--json` outputs of the sieve CLI: a stable, machine-readable interface.
//
// Field names follow DESIGN.md's CLI section (`sieve run --json` → `{ id }`; `status` → per
// stage `id`, `status`, `step`, `steps`; `show` → per stage `id`, `kind`, `status`,
// `metrics` (name → number), `artifacts` with `sha256` and an absolute `path`). Additions
// are allowed, renames are not. Timestamps are ISO-8601 UTC strings; durations are
// milliseconds. activities/store/records.ts builds these shapes from the database.
import { z } from 'zod';
import { Recipe, RecipeIssue } from './recipe';
import { ArtifactKind, Environment, RunStatus, StageStatus } from './records';

const Timestamp = z.iso.datetime();
const NullableTimestamp = Timestamp.nullable();

/** `sieve run --json`, printed last. */
export const RunOutput = z.strictObject({ id: z.string() });
export type RunOutput = z.infer<typeof RunOutput>;

/**
 * `sieve validate --json`: the resolved recipe (every default filled in), its hash and the order
 * its stages run in; or, with exit code 1, the issues (each with its path and, in the file, its
 * line:column).
 */
export const ValidateOutput = z.discriminatedUnion('ok', [
  z.strictObject({ ok: z.literal(true), recipe: Recipe, hash: z.string(), order: z.array(z.string()) }),
  z.strictObject({ ok: z.literal(false), issues: z.array(RecipeIssue) }),
]);

/** Any command run with `--json` that fails: printed on stdout, with the non-zero exit. */
export const ErrorOutput = z.strictObject({
  error: z.strictObject({
    message: z.string(),
    /** The kind of failure: `usage`, `invalid-recipe`, `not-found`, `database-lost`, `database-unusable`, `temporal-not-found`, `error`. */
    code: z.string(),
    /** The recipe path at fault (`stages[2].from`), when there is one. */
    path: z.string().optional(),
  }),
});
export type ErrorOutput = z.infer<typeof ErrorOutput>;
export type ValidateOutput = z.infer<typeof ValidateOutput>;

export const StageStatusOutput = z.strictObject({
  id: z.string(),
  status: StageStatus,
  step: z.int().nonnegative(),
  /** null for a stage without a step count. */
  steps: z.int().nonnegative().nullable(),
});
export type StageStatusOutput = z.infer<typeof StageStatusOutput>;

/** `sieve status <run> --json`. */
export const StatusOutput = z.strictObject({
  id: z.string(),
  status: RunStatus,
  stages: z.array(StageStatusOutput),
});
export type StatusOutput = z.infer<typeof StatusOutput>;

/** `sieve status --json` without a run: the runs still pending or running. */
export const StatusListOutput = z.strictObject({ runs: z.array(StatusOutput) });
export type StatusListOutput = z.infer<typeof StatusListOutput>;

export const ArtifactOutput = z.strictObject({
  sha256: z.string(),
  /** Absolute path of the stored file. */
  path: z.string(),
  bytes: z.int().nonnegative(),
  kind: ArtifactKind,
  /** How the stage used it: `input`, `model`, `checkpoint`, `report`, … */
  role: z.string(),
  /** The step a checkpoint was taken at; null otherwise. */
  step: z.int().nonnegative().nullable(),
});
export type ArtifactOutput = z.infer<typeof ArtifactOutput>;

export const StageRef = z.strictObject({ runId: z.string(), stageId: z.string() });
export type StageRef = z.infer<typeof StageRef>;

export const ShowStage = z.strictObject({
  id: z.string(),
  kind: z.string(),
  status: StageStatus,
  /** The stages it consumed (lineage inside the run). */
  from: z.array(z.string()),
  attempt: z.int().nonnegative(),
  step: z.int().nonnegative(),
  steps: z.int().nonnegative().nullable(),
  /** Final value per metric: the step-less value if recorded, else the latest step's; null stands for NaN. */
  metrics: z.record(z.string(), z.number().nullable()),
  artifacts: z.array(ArtifactOutput),
  /** True when the outputs were taken from another stage (the cache, or the parent run on resume) instead of computed. */
  cached: z.boolean(),
  reusedFrom: StageRef.nullable(),
  /** Why the stage ran or was reused, in words. */
  reason: z.string().nullable(),
  cacheKey: z.string().nullable(),
  timings: z.strictObject({
    startedAt: NullableTimestamp,
    finishedAt: NullableTimestamp,
    /** finishedAt − startedAt. */
    wallMs: z.number().nonnegative().nullable(),
    /** Time the attempt that finished spent computing. */
    computeMs: z.number().nonnegative().nullable(),
  }),
  error: z.string().nullable(),
});
export type ShowStage = z.infer<typeof ShowStage>;

export const HistoryEntry = z.strictObject({
  id: z.string(),
  name: z.string(),
  status: RunStatus,
  /** The run this one resumed, if any (lineage across runs). */
  parentRunId: z.string().nullable(),
  recipeHash: z.string(),
  codeVersion: z.string(),
  createdAt: Timestamp,
  startedAt: NullableTimestamp,
  finishedAt: NullableTimestamp,
  error: z.string().nullable(),
});
export type HistoryEntry = z.infer<typeof HistoryEntry>;

/** `sieve show <run> --json`: the history entry, the machine, the recipe and every stage. */
export const ShowOutput = HistoryEntry.extend({
  /** `sieve reproduce`: the run this one ran again, or null. */
  reproduces: z.string().nullable(),
  environment: Environment,
  recipe: Recipe,
  /** In the recipe's declaration order; stages that never started are absent. */
  stages: z.array(ShowStage),
});
export type ShowOutput = z.infer<typeof ShowOutput>;

/** `sieve history --json`: newest first. */
export const HistoryOutput = z.strictObject({ runs: z.array(HistoryEntry) });
export type HistoryOutput = z.infer<typeof HistoryOutput>;

/**
 * One model's measures, read from the final metrics of the `evaluate` stages of its run that name it
 * in `from` (`<stage>/<set>/ppl`, `<stage>/two_four`, `<stage>/bytes`, …). A measure nobody recorded
 * is null, or absent from its list.
 */
export const ModelMeasures = z.strictObject({
  run: z.string(),
  /** The stage that produced the model. */
  stage: z.string(),
  kind: z.string(),
  /** The evaluate stages of the run that measured it, in recipe order; the first with a value wins. */
  evaluatedBy: z.array(z.string()),
  /** Per evaluation set and runtime (`native`, `onnxruntime`); null stands for NaN. */
  perplexity: z.array(z.strictObject({ set: z.string(), runtime: z.string(), value: z.number().nullable() })),
  /** The share of in-scope groups of four weights that are 2:4, in [0, 1]. */
  twoFour: z.number().min(0).max(1).nullable(),
  params: z.number().nonnegative().nullable(),
  nonzeroParams: z.number().nonnegative().nullable(),
  /** Size as stored with its compression accounted for; `bytesDense` without it (every weight stored dense). */
  bytes: z.number().nonnegative().nullable(),
  bytesDense: z.number().nonnegative().nullable(),
  bitsPerWeight: z.number().nonnegative().nullable(),
  /** Per runtime that was timed. */
  throughput: z.array(z.strictObject({ runtime: z.string(), tokensPerSec: z.number().nonnegative().nullable(), latencyMs: z.number().nonnegative().nullable() })),
});
export type ModelMeasures = z.infer<typeof ModelMeasures>;

/**
 * `sieve compare <run[:stage]>... --json`: the operands side by side; every `values` array is in
 * `runs` order. A `run:stage` operand stands for the model that stage produced: its recipe settings,
 * stages and metrics are those of the stage and the stages it derives from.
 */
export const CompareOutput = z.strictObject({
  runs: z.array(
    HistoryEntry.pick({ id: true, name: true, status: true, recipeHash: true, codeVersion: true, createdAt: true }).extend({
      /** The stage a `run:stage` operand selects; null for a whole run. */
      stage: z.string().nullable(),
    }),
  ),
  /** Recipe settings that differ between the operands, every default filled in; `stages[<id>].<key>` for stage settings. A value is null where an operand lacks the setting. */
  recipe: z.array(z.strictObject({ path: z.string(), values: z.array(z.unknown()) })),
  /** Every stage of any operand, in first-seen order; null where an operand has no such stage. */
  stages: z.array(
    z.strictObject({
      id: z.string(),
      runs: z.array(z.strictObject({ status: StageStatus, computeMs: z.number().nonnegative().nullable(), reusedFrom: StageRef.nullable() }).nullable()),
    }),
  ),
  /** Final metric values; null where an operand has no value (or the value is NaN). */
  metrics: z.array(z.strictObject({ stage: z.string(), name: z.string(), values: z.array(z.number().nullable()) })),
  /** One entry per compared model, each once: a `run:stage` operand's, and every evaluated model of a whole-run operand. */
  models: z.array(ModelMeasures),
});
export type CompareOutput = z.infer<typeof CompareOutput>;

/** `sieve verify --json` (activities/store/verify.ts): per run, null or its first broken item; the journal's head; the check against an earlier head. */
export const VerifyOutput = z.strictObject({
  ok: z.boolean(),
  head: z.string(),
  against: z.strictObject({ head: z.string(), problem: z.string().nullable() }).nullable(),
  runs: z.array(
    z.strictObject({
      runId: z.string(),
      problem: z.string().nullable(),
      checked: z.strictObject({ events: z.int().nonnegative(), stages: z.int().nonnegative(), artifacts: z.int().nonnegative(), absent: z.int().nonnegative() }),
    }),
  ),
});
export type VerifyOutput = z.infer<typeof VerifyOutput>;

/** `sieve verify --head --json`. */
export const VerifyHeadOutput = z.strictObject({ head: z.string() });
export type VerifyHeadOutput = z.infer<typeof VerifyHeadOutput>;

/** `sieve import <bundle> --json`: runs added (oldest first), runs already here with the same history, artifact files stored. */
export const ImportOutput = z.strictObject({ run: z.string(), imported: z.array(z.string()), present: z.array(z.string()), files: z.int().nonnegative() });
export type ImportOutput = z.infer<typeof ImportOutput>;

/** One stage of `sieve reproduce`: its outputs against those of the stage that computed them first. */
export const ReproducedStage = z.strictObject({
  id: z.string(),
  /** The stage whose outputs the original run recorded (itself, or the stage it was cached from). */
  original: z.strictObject({ runId: z.string(), stageId: z.string() }),
  identical: z.boolean(),
  /** Outputs whose bytes differ, by role (sha256 null: not produced by that side). */
  differs: z.array(z.strictObject({ role: z.string(), original: z.string().nullable(), reproduced: z.string().nullable() })),
  /** What was not the same between the two computations, in words; empty when everything was. */
  causes: z.array(z.string()),
});

/** `sieve reproduce <run> --json`. */
export const ReproduceOutput = z.strictObject({
  id: z.string(),
  reproduces: z.string(),
  identical: z.boolean(),
  stages: z.array(ReproducedStage),
});
export type ReproduceOutput = z.infer<typeof ReproduceOutput>;

/** `sieve run <recipe> --seeds … --set … --json`: the sweep's id and its runs (the shared run first), with their points. */
export const SweepOutput = z.strictObject({
  id: z.string(),
  runs: z.array(z.strictObject({ id: z.string(), status: z.string(), label: z.string() })),
});
export type SweepOutput = z.infer<typeof SweepOutput>;

/** `sieve compare <sweep> --json`: the settings (each with its runs over the seeds) and every stage's final metrics as mean ± sd per setting (null: no completed run has it). */
export const SweepCompareOutput = z.strictObject({
  sweep: z.string(),
  shared: z.string().nullable(),
  settings: z.array(z.strictObject({ label: z.string(), set: z.record(z.string(), z.unknown()), runs: z.array(z.strictObject({ id: z.string(), seed: z.int(), status: z.string() })) })),
  metrics: z.array(
    z.strictObject({
      stage: z.string(),
      name: z.string(),
      values: z.array(z.strictObject({ mean: z.number(), sd: z.number(), n: z.int().positive() }).nullable()),
    }),
  ),
});
export type SweepCompareOutput = z.infer<typeof SweepCompareOutput>;
