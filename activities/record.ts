// The control activities (task queue `sieve`, on the host that owns SIEVE_HOME/sieve.db): they
// open and close runs, decide whether a stage must run (stage cache, `sieve resume`), record what
// the compute stages report, and prune a stage's old checkpoints as new ones land (here, because
// only SQLite knows every stage and run that links a file). Every write is idempotent, because
// Temporal may retry any of these after a crash between the write and the acknowledgement.

import { and, eq } from 'drizzle-orm';
import { backendInfo } from '../kernels';
import { canonicalJson } from '../schemas/canonical';
import { trainSource, type DataSource } from '../schemas/data';
import { checkpointCandidates, type CheckpointRef, type ComputeResult, type RunOptions, type StageOutput } from '../schemas/pipeline';
import { stageCacheConfig, stageInputs, type Recipe, type RecipeStage } from '../schemas/recipe';
import { definitionOf } from '../schemas/stages';
import { runs, stages } from '../schemas/tables';
import { badInput } from './compute';
import { loadCorpus } from './data/corpus';
import { History } from './train/history';
import type { ArtifactStore } from './store/artifacts';
import { explainCacheMiss, findCachedStage, stageCacheKey, type StageCacheInput } from './store/cache';
import type { SieveDb } from './store/db';
import { sha256Hex } from './store/hash';
import { appendEvent } from './store/journal';
import { finishedStageOutputs, stageArtifactRows } from './store/reads';
import { CHECKPOINT_ROLE, deleteArtifactFile, HISTORY_SEGMENT_ROLE, keepCheckpointsOf, pruneCheckpoints, recordedArtifacts } from './store/prune';
import { codeVersion, environment } from './store/provenance';
import { stageSeal } from './store/seal';
import { createRun, linkArtifacts, recordMetrics, setRunStatus, upsertStage } from './store/writes';

export interface ControlDeps {
  db: SieveDb;
  store: ArtifactStore;
}

export interface StagePlan {
  decision: 'run' | 'cached' | 'reused';
  reason: string;
  cacheKey: string;
  /** Set when the stage is served without running. */
  output: StageOutput | null;
}

function findStage(recipe: Recipe, stageId: string): RecipeStage {
  const stage = recipe.stages.find((s) => s.id === stageId);
  if (!stage) throw new Error(`recipe ${recipe.name} has no stage ${stageId}`);
  return stage;
}

/** Hash of the text a stage reads (its definition says which): the train split and/or evaluation sets, by name. */
function dataHash(recipe: Recipe, stage: RecipeStage): string {
  const text = (source: DataSource) => {
    try {
      return loadCorpus(source).sha256;
    } catch (err) {
      // The data is gone or unreadable: retrying will not bring it back.
      throw badInput(new Error(`stage ${stage.id}: ${(err as Error).message}`));
    }
  };
  const reads = definitionOf(stage.kind).reads(stage, recipe);
  return sha256Hex(
    canonicalJson({
      train: reads.train ? text(trainSource(recipe.data)) : undefined,
      eval: Object.fromEntries(reads.eval.map((name) => [name, text(recipe.data.eval[name])])),
    }),
  );
}

export function controlActivities(deps: ControlDeps) {
  const { db, store } = deps;

  const recordOutput = (runId: string, stageId: string, output: StageOutput) => {
    linkArtifacts(
      db,
      output.artifacts.map((a) => ({ runId, stageId, role: a.role, artifact: { sha256: a.sha256, bytes: a.bytes, kind: a.kind } })),
    );
    recordMetrics(db, Object.entries(output.metrics).map(([name, value]) => ({ runId, stageId, name, value })));
  };

  return {
    async beginRun(input: { runId: string; recipe: Recipe; options: RunOptions; parentRunId: string | null }): Promise<void> {
      createRun(db, {
        id: input.runId,
        recipe: input.recipe,
        codeVersion: codeVersion(),
        environment: environment({ blas: backendInfo('cpu').blas }),
        parentRunId: input.parentRunId,
        reproduces: input.options.reproduces ?? null,
        sweep: input.options.sweep ?? null,
      });
      for (const stage of input.recipe.stages) upsertStage(db, { runId: input.runId, stage });
      setRunStatus(db, input.runId, 'running');
    },

    async prepareStage(input: {
      runId: string;
      recipe: Recipe;
      stageId: string;
      inputs: Record<string, StageOutput>;
      noCache: boolean;
      /** Outputs to take as they are: from the run this one resumes, or (sharedBy) a sweep's shared run. */
      reuse: { runId: string; output: StageOutput; sharedBy?: string } | null;
    }): Promise<StagePlan> {
      const { runId, recipe } = input;
      const stage = findStage(recipe, input.stageId);
      // Each input's primary output (its kind's product: `model` or `report`) is what this stage consumes.
      const inputModels = stageInputs(stage).map((id) => {
        const product = definitionOf(recipe.stages.find((s) => s.id === id)!.kind).produces;
        const primary = input.inputs[id]?.artifacts.find((a) => a.role === product);
        if (!primary) throw new Error(`stage ${stage.id}: input ${id} has no ${product} artifact`);
        return primary;
      });
      const basis: StageCacheInput = {
        kind: stage.kind,
        config: stageCacheConfig(recipe, stage),
        inputs: inputModels.map((m) => m.sha256),
        dataHash: dataHash(recipe, stage),
        codeVersion: codeVersion(),
      };
      const cacheKey = stageCacheKey(basis);
      linkArtifacts(
        db,
        inputModels.map((m) => ({ runId, stageId: stage.id, role: 'input', artifact: { sha256: m.sha256, bytes: m.bytes, kind: m.kind } })),
      );

      if (input.reuse) {
        for (const a of input.reuse.output.artifacts) await store.verify(a.sha256);
        const reason = input.reuse.sharedBy
          ? `shared by every point of sweep ${input.reuse.sharedBy}: computed once, in run ${input.reuse.runId}`
          : `finished in run ${input.reuse.runId}, which this run resumes`;
        recordOutput(runId, stage.id, input.reuse.output);
        const seal = stageSeal(db, runId, stage.id, input.reuse.output.artifacts);
        upsertStage(db, { runId, stage, status: 'reused', cacheKey, cacheBasis: basis, reusedFrom: { runId: input.reuse.runId, stageId: stage.id }, reason, seal });
        return { decision: 'reused', reason, cacheKey, output: input.reuse.output };
      }
      if (!input.noCache) {
        const hit = await findCachedStage(db, store, cacheKey);
        if (hit) {
          const output: StageOutput = {
            artifacts: hit.artifacts.map((a) => ({ sha256: a.sha256, bytes: a.bytes, kind: a.kind, role: a.role })),
            metrics: Object.fromEntries(Object.entries(hit.metrics).map(([k, v]) => [k, v ?? NaN])),
            computeMs: 0,
            events: [],
          };
          const reason = `cache hit: same inputs, config, data and code as stage ${hit.stageId} of run ${hit.runId}`;
          recordOutput(runId, stage.id, output);
          const seal = stageSeal(db, runId, stage.id, output.artifacts);
          upsertStage(db, { runId, stage, status: 'cached', cacheKey, cacheBasis: basis, reusedFrom: { runId: hit.runId, stageId: hit.stageId }, reason, computeMs: 0, seal });
          return { decision: 'cached', reason, cacheKey, output };
        }
      }
      const reason = input.noCache ? 'cache disabled (--no-cache)' : `cache miss: ${explainCacheMiss(db, recipe.name, stage.id, basis)}`;
      upsertStage(db, { runId, stage, status: 'running', cacheKey, cacheBasis: basis, reason });
      return { decision: 'run', reason, cacheKey, output: null };
    },

    /** Records a checkpoint and its history segment, then prunes the stage's checkpoints to its `keepCheckpoints`. */
    async recordCheckpoint(input: { runId: string; checkpoint: CheckpointRef }): Promise<void> {
      const { runId, checkpoint } = input;
      const { stageId, step, history } = checkpoint;
      linkArtifacts(db, [
        { runId, stageId, role: CHECKPOINT_ROLE, step, artifact: { sha256: checkpoint.sha256, bytes: checkpoint.bytes, kind: 'checkpoint' } },
        ...(history ? [{ runId, stageId, role: HISTORY_SEGMENT_ROLE, step, artifact: { sha256: history.sha256, bytes: history.bytes, kind: 'metrics' as const } }] : []),
      ]);
      const stage = findStage(runRecipe(db, runId), stageId);
      upsertStage(db, { runId, stage, step });
      appendEvent(db, { runId, stageId, type: 'stage.checkpoint', payload: { step, sha256: checkpoint.sha256, history: history?.sha256 ?? null } });
      // The checkpoint just written is kept whatever its step: the stage continues from it.
      const { freed } = pruneCheckpoints(db, { runId, stageId, keep: keepCheckpointsOf(stage), alsoKeep: checkpoint.sha256 });
      for (const artifact of freed) await deleteArtifactFile(store.home, artifact.sha256);
    },

    async recordStageResult(input: { runId: string; stageId: string; cacheKey: string; result: ComputeResult }): Promise<void> {
      const { runId, stageId } = input;
      const { output, attempt, environment: worker } = input.result;
      const recipe = runRecipe(db, runId);
      const stage = findStage(recipe, stageId);
      recordOutput(runId, stageId, output);
      await recordHistory(db, store, runId, stageId, output);
      for (const e of output.events) appendEvent(db, { runId, stageId, type: `stage.${e.type}`, payload: e.payload, at: new Date(e.at) });
      const steps = definitionOf(stage.kind).steps(stage) ?? undefined;
      const seal = stageSeal(db, runId, stageId, output.artifacts);
      upsertStage(db, { runId, stage, status: 'completed', attempt, environment: worker, computeMs: output.computeMs, step: steps, error: null, reason: withFallbackNote(db, runId, stageId, output), seal });
    },

    /**
     * `attempt`: the attempt that failed last, when the workflow knows it (histories before it was
     * passed lack it). `checkpoint`: the stage's checkpoints as the workflow knows them, those a
     * `sieve resume` handed it included. A stage that ends without a checkpoint of its own links
     * those still recorded, so a resume of this run (one that failed before its first checkpoint,
     * say) continues from them instead of starting over.
     */
    async recordStageEnd(input: {
      runId: string;
      stageId: string;
      status: 'failed' | 'skipped' | 'cancelled';
      error: string | null;
      attempt?: number | null;
      checkpoint?: CheckpointRef | null;
    }): Promise<void> {
      const recipe = runRecipe(db, input.runId);
      const stage = findStage(recipe, input.stageId);
      let step: number | undefined;
      if (input.checkpoint && !stageArtifactRows(db, input.runId, stage.id).some((a) => a.role === CHECKPOINT_ROLE)) {
        const all = checkpointCandidates(input.checkpoint);
        const recorded = recordedArtifacts(db, all.map((c) => c.sha256));
        const handed = all.filter((c) => recorded.has(c.sha256));
        linkArtifacts(
          db,
          handed.map((c) => ({ runId: input.runId, stageId: stage.id, role: CHECKPOINT_ROLE, step: c.step, artifact: { sha256: c.sha256, bytes: c.bytes, kind: 'checkpoint' as const } })),
        );
        step = handed[0]?.step;
      }
      const attempt = input.attempt ?? undefined;
      upsertStage(db, { runId: input.runId, stage, status: input.status, error: input.error, attempt, step });
    },

    /** The outputs of a run's finished stages, by stage id (what a sweep's points take from its shared run). */
    async finishedOutputs(input: { runId: string }): Promise<Record<string, StageOutput>> {
      return finishedStageOutputs(db, input.runId);
    },

    async finishRun(input: { runId: string; status: 'completed' | 'failed' | 'cancelled'; error: string | null }): Promise<void> {
      setRunStatus(db, input.runId, input.status, input.error);
    },
  };
}

function runRecipe(db: SieveDb, runId: string): Recipe {
  const row = db.select({ recipe: runs.recipe }).from(runs).where(eq(runs.id, runId)).get();
  if (!row) throw new Error(`no run ${runId} in the database`);
  return row.recipe;
}

/**
 * The stage's reason, with the sentence of a `resume-fallback` event appended (the stage resumed
 * from an older checkpoint than the newest it knew), so `sieve show` says so; undefined (keep the
 * reason) when there was none. Appended once, however often this is retried.
 */
function withFallbackNote(db: SieveDb, runId: string, stageId: string, output: StageOutput): string | undefined {
  const note = output.events.find((e) => e.type === 'resume-fallback')?.payload.message;
  if (typeof note !== 'string') return undefined;
  const row = db.select({ reason: stages.reason }).from(stages).where(and(eq(stages.runId, runId), eq(stages.stageId, stageId))).get();
  const reason = row?.reason ?? null;
  if (reason?.endsWith(note)) return reason;
  return reason ? `${reason}; ${note}` : note;
}

/**
 * A training stage's per-step history (loss, learning rate, gradient norm, evaluations) becomes
 * step-indexed metrics; a step whose update was skipped (onNonFinite: skip-step) also gets
 * `train/skipped` = 1.
 */
async function recordHistory(db: SieveDb, store: ArtifactStore, runId: string, stageId: string, output: StageOutput) {
  const history = output.artifacts.find((a) => a.role === 'history');
  if (!history) return;
  const steps = History.parse(JSON.parse((await store.read(history.sha256)).toString('utf8')));
  recordMetrics(
    db,
    steps.flatMap((s) => [
      { runId, stageId, step: s.step, name: 'train/loss', value: s.loss },
      { runId, stageId, step: s.step, name: 'train/lr', value: s.lr },
      { runId, stageId, step: s.step, name: 'train/grad_norm', value: s.gradNorm },
      ...(s.skipped ? [{ runId, stageId, step: s.step, name: 'train/skipped', value: 1 }] : []),
      ...Object.entries(s.eval ?? {}).map(([set, ppl]) => ({ runId, stageId, step: s.step, name: `eval/${set}/ppl`, value: ppl })),
      ...Object.entries(s.metrics ?? {}).map(([name, value]) => ({ runId, stageId, step: s.step, name, value })),
    ]),
  );
}
